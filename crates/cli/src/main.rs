//! `blindfold`: private neural-network prediction. This file parses flags and
//! maps errors to exit codes; the work is in the library crates.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod bench_cmd;
mod cs_cmds;
mod fhe_cmds;
mod paths;
mod plain_cmds;
mod secure_cmds;
mod segment_cmds;

#[derive(Parser)]
#[command(
    name = "blindfold",
    version,
    about = "Private neural-network prediction on secret shares",
    long_about = "Private neural-network prediction. A model owner splits an ONNX model \
between two non-colluding servers; a client secret-shares its input; the servers \
compute the prediction on shares and learn nothing.\n\n\
MODEL arguments take a path to an .onnx file or the name of a bundled zoo model \
(see `blindfold zoo`)."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the bundled model zoo.
    Zoo,
    /// Show a model's layers, shapes, parameters, multiplications, non-linear
    /// element counts and the protocol each layer uses.
    Inspect(plain_cmds::InspectArgs),
    /// Run a model on one input (.npy float32 of the input shape, or a PNG).
    Run(plain_cmds::RunArgs),
    /// Accuracy on a dataset (default: the 1,000 bundled MNIST test digits);
    /// Dice per class for a segmentation model on a set with masks.
    Eval(plain_cmds::EvalArgs),
    /// Segment one input: write its per-pixel classes as a coloured mask PNG
    /// (a model whose output is a [classes, rows, cols] map).
    #[command(
        after_help = "Example:\n  blindfold segment unet canvas.png --out /tmp/mask.png --scale 4\n  \
blindfold segment unet data/mnist-seg-test-100/images.idx3-ubyte --index 3 --out /tmp/mask.png --mode two-server --json"
    )]
    Segment(segment_cmds::SegmentArgs),
    /// Write digits of a dataset as PNG and .npy files (inputs for `run`/`query`).
    Digits(plain_cmds::DigitsArgs),
    /// Model owner: split a model into two share files, one per server.
    #[command(
        after_help = "Example:\n  blindfold split minionn --out /tmp/shares\n  \
(then copy party0.share to server P0 and party1.share to server P1)"
    )]
    Split(secure_cmds::SplitArgs),
    /// Make a deployment's CA and the certificates of P0, P1 and clients.
    #[command(after_help = "Example:\n  blindfold certs --out /tmp/pki\n  \
(then P0 gets ca.pem p0.pem p0.key, P1 ca.pem p1.pem p1.key, clients ca.pem client.pem client.key)")]
    Certs(secure_cmds::CertsArgs),
    /// Run one of the two servers.
    #[command(after_help = "Example (two terminals or two machines):\n  \
blindfold serve --party 0 --share party0.share --listen 0.0.0.0:7000 --tls-dir pki\n  \
blindfold serve --party 1 --share party1.share --listen 0.0.0.0:7001 --peer P0_HOST:7000 --tls-dir pki\n\n\
Party 1 connects to party 0; both then precompute queries in the background and \
answer clients on their --listen address.")]
    Serve(secure_cmds::ServeArgs),
    /// Client: secret-share an input to both servers and reconstruct the answer.
    #[command(
        after_help = "Example:\n  blindfold digits --out /tmp/digits --count 1\n  \
blindfold query --servers P0_HOST:7000,P1_HOST:7001 --tls-dir pki /tmp/digits/digit0_label1.png\n\n\
P0 receives only a random seed, P1 only the input masked by that seed's expansion."
    )]
    Query(secure_cmds::QueryArgs),
    /// Both servers and a client on loopback with the bundled model and digits
    /// (`--segment`: segmentation of digit canvases, with pictures).
    Demo(secure_cmds::DemoArgs),
    /// Measure: `bench primitives`, `bench preprocessing --network NAME`,
    /// `bench --network NAME --mode two-server`.
    Bench(bench_cmd::BenchArgs),
    /// Non-interactive FHE on files: the server's `profile` and `eval`, the
    /// client's `keygen`, `encrypt` and `decrypt`.
    #[command(
        subcommand,
        after_help = "Example:\n  blindfold fhe keygen --model sok_mnist --out /tmp/k\n  \
blindfold fhe encrypt --key /tmp/k/secret.key --data data/mnist-test-1k --limit 100 --out /tmp/q.fhe\n  \
blindfold fhe eval sok_mnist --eval-key /tmp/k/eval.key --in /tmp/q.fhe --out /tmp/r.fhe\n  \
blindfold fhe decrypt --key /tmp/k/secret.key --in /tmp/r.fhe"
    )]
    Fhe(fhe_cmds::FheCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res: Result<()> = match cli.cmd {
        Cmd::Zoo => plain_cmds::zoo(),
        Cmd::Inspect(a) => plain_cmds::inspect(a),
        Cmd::Run(a) => plain_cmds::run(a),
        Cmd::Fhe(c) => fhe_cmds::run(c),
        Cmd::Eval(a) => plain_cmds::eval(a),
        Cmd::Digits(a) => plain_cmds::digits(a),
        Cmd::Segment(a) => segment_cmds::segment(a),
        Cmd::Split(a) => secure_cmds::split_cmd(a),
        Cmd::Certs(a) => secure_cmds::certs(a),
        Cmd::Serve(a) => secure_cmds::serve(a),
        Cmd::Query(a) => secure_cmds::query(a),
        Cmd::Demo(a) => secure_cmds::demo(a),
        Cmd::Bench(a) => bench_cmd::bench(a),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes, leaving out a cause whose text the message before it
/// already contains (library errors often embed their source).
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}
