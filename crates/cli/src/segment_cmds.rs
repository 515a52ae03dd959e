//! Segmentation: `segment` (one input to a coloured mask PNG), the Dice table
//! of `eval`, and the segmentation demo (`demo --segment`).
//!
//! A segmentation model is any model whose output is a `[C, H, W]` map with
//! `C >= 2` classes (class 0 background); the mask is the per-pixel argmax.

use crate::paths;
use crate::plain_cmds::{ModeArg, ModelArg};
use crate::secure_cmds;
use anyhow::{bail, Context, Result};
use blindfold_engine::infer::{self, EvalReport, InferenceCost, SegmentationEval};
use blindfold_engine::Mode;
use blindfold_model::data::{self, Dataset};
use blindfold_model::engine as plain;
use blindfold_model::picture::{self, Picture};
use blindfold_model::segment::{self, DiceCounts, DiceReport, MapShape};
use blindfold_model::{Model, QModel};
use clap::Args;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct SegmentArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// Input: a grayscale PNG of the model's input size, a .npy (float32,
    /// the input shape), or an IDX image file (pick the image with --index).
    pub input: PathBuf,
    /// Where the coloured mask goes (PNG; class 0 black, classes 1-10 ten
    /// distinct colours, larger classes cycle).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = ModeArg::Plain)]
    pub mode: ModeArg,
    /// Which image of an IDX image file (default: the first).
    #[arg(long)]
    pub index: Option<usize>,
    /// Enlarge the written mask by this whole factor (pixels repeated).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub scale: u32,
    /// Also write the input and the mask side by side, captioned, to this PNG.
    #[arg(long)]
    pub sheet: Option<PathBuf>,
    /// Print a JSON object (mask path, pixels per class, costs) instead of a
    /// summary.
    #[arg(long)]
    pub json: bool,
    /// Remote two-server mode: P0's and P1's addresses (with --mode two-server).
    #[arg(long, value_delimiter = ',')]
    pub servers: Vec<String>,
    /// Remote client-server mode: the server's address (with --mode client-server).
    #[arg(long)]
    pub server: Option<String>,
    /// Certificates for the remote modes (or --insecure-plaintext).
    #[command(flatten)]
    pub tls: secure_cmds::TlsArgs,
}

/// The output map of a model, or an error saying the model does not segment.
pub fn map_of(m: &Model) -> Result<MapShape> {
    MapShape::require(m.output_shape().dims()).with_context(|| {
        format!(
            "model {} does not segment: `segment` needs a model whose output is a [classes, rows, cols] map (try `blindfold run`)",
            m.name
        )
    })
}

/// Read one input of `shape`: PNG, .npy, or image `index` of an IDX file.
fn load_segment_input(path: &Path, shape: &[usize], index: Option<usize>) -> Result<Vec<f32>> {
    let head = {
        use std::io::Read;
        let mut head = [0u8; 4];
        let mut f =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let n = f.read(&mut head)?;
        head[..n].to_vec()
    };
    if data::is_idx_images(&head) {
        return Ok(data::load_idx_image(path, index.unwrap_or(0), shape)?);
    }
    if index.is_some() {
        bail!(
            "--index picks an image of an IDX image file; {} is not one",
            path.display()
        );
    }
    Ok(data::load_input(path, shape)?)
}

/// Where a segmentation is computed: in this process (plain, float, or a
/// secure mode's servers on loopback), or by remote servers (`--server` for
/// client-server mode, `--servers` for two-server mode, with `--tls-dir`).
/// The secure modes ask for the mask alone: the per-pixel argmax runs in a
/// garbled circuit and only the mask leaves the protocol.
enum Segmenter {
    Local(Mode),
    TwoServer {
        servers: [String; 2],
        tls: Option<blindfold_net::TlsIdentity>,
    },
    ClientServer {
        server: String,
        tls: Option<blindfold_net::TlsIdentity>,
    },
}

/// A mask and what it cost.
struct Segmented {
    mask: Vec<u32>,
    cost: Option<InferenceCost>,
}

const REMOTE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

impl Segmenter {
    fn name(&self) -> String {
        match self {
            Segmenter::Local(mode) => mode.name().to_string(),
            Segmenter::TwoServer { .. } => "two-server (remote)".into(),
            Segmenter::ClientServer { .. } => "client-server (remote)".into(),
        }
    }

    fn segment(&self, m: &Model, q: &QModel, map: MapShape, x: &[f32]) -> Result<Segmented> {
        use blindfold_engine::party::OutputKind;
        let mask_of = |mask: Option<Vec<u32>>| -> Result<Vec<u32>> {
            let mask = mask.context("the servers' answer carries no mask")?;
            if mask.len() != map.rows * map.cols {
                bail!(
                    "the servers' mask has {} pixels, the model's map {}",
                    mask.len(),
                    map.rows * map.cols
                );
            }
            Ok(mask)
        };
        match self {
            Segmenter::Local(mode @ Mode::Secure(d)) => {
                let _ = mode;
                let mut li = infer::LocalInference::start(q, *d, 1)?;
                let p = li.infer_kind(x, OutputKind::Label)?;
                Ok(Segmented {
                    mask: mask_of(p.mask)?,
                    cost: p.cost,
                })
            }
            Segmenter::Local(mode) => {
                let p = infer::open(*mode, m, q)?.infer(x)?;
                let mask = match (p.mask, &p.ring) {
                    (Some(mask), _) => mask,
                    (None, Some(ring)) => infer::secure_mask(map, ring)?,
                    (None, None) => segment::argmax_map(map, &p.scores)?,
                };
                Ok(Segmented { mask, cost: p.cost })
            }
            Segmenter::TwoServer { servers, tls } => {
                let s = [servers[0].as_str(), servers[1].as_str()];
                let a = match tls {
                    None => blindfold_engine::serve::query_on(
                        &blindfold_net::TcpTransport,
                        s,
                        x,
                        REMOTE_TIMEOUT,
                        OutputKind::Label,
                    )?,
                    Some(id) => blindfold_engine::serve::query_on(
                        &id.transport(None)?,
                        s,
                        x,
                        REMOTE_TIMEOUT,
                        OutputKind::Label,
                    )?,
                };
                let c = &a.cost[0];
                Ok(Segmented {
                    cost: Some(InferenceCost {
                        latency_ms: a.latency_ms,
                        offline_ms: c.offline_ms,
                        online_ms: c.online_ms,
                        bytes: c.offline_bytes + c.online_bytes + a.client_bytes,
                    }),
                    mask: mask_of(a.mask)?,
                })
            }
            Segmenter::ClientServer { server, tls } => {
                let a = match tls {
                    None => blindfold_engine::serve::CsClient::connect(server, REMOTE_TIMEOUT)?
                        .query(x, OutputKind::Label)?,
                    Some(id) => blindfold_engine::serve::CsClient::connect_on(
                        &id.transport(Some(blindfold_net::TlsRole::P0))?,
                        server,
                        REMOTE_TIMEOUT,
                    )?
                    .query(x, OutputKind::Label)?,
                };
                Ok(Segmented {
                    cost: Some(InferenceCost {
                        latency_ms: a.latency_ms,
                        offline_ms: a.offline_ms,
                        online_ms: a.online_ms,
                        bytes: a.offline_bytes + a.online_bytes,
                    }),
                    mask: mask_of(a.mask)?,
                })
            }
        }
    }
}

/// A mask (`rows × cols`) with every pixel repeated `k × k` times.
fn scale_mask(rows: usize, cols: usize, mask: &[u32], k: usize) -> Vec<u32> {
    let mut out = Vec::with_capacity(mask.len() * k * k);
    for r in 0..rows * k {
        for c in 0..cols * k {
            out.push(mask[(r / k) * cols + c / k]);
        }
    }
    out
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

#[derive(Serialize)]
struct SegmentOutput {
    model: String,
    mode: String,
    input: PathBuf,
    /// The mask PNG written.
    out: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    sheet: Option<PathBuf>,
    rows: usize,
    cols: usize,
    classes: usize,
    scale: u32,
    /// Pixels of each class, class 0 first (of the model's map, before
    /// scaling).
    pixels: Vec<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cost: Option<InferenceCost>,
}

pub fn segment(a: SegmentArgs) -> Result<()> {
    let (m, q) = a.model.load()?;
    let map = map_of(&m)?;
    let x = load_segment_input(&a.input, m.input_shape().dims(), a.index)?;
    let how = match (a.mode, a.servers.as_slice(), &a.server) {
        (_, [], None) => Segmenter::Local(a.mode.mode()?),
        (ModeArg::TwoServer, [p0, p1], None) => Segmenter::TwoServer {
            servers: [p0.clone(), p1.clone()],
            tls: a.tls.identity(blindfold_net::TlsRole::Client)?,
        },
        (ModeArg::ClientServer, [], Some(s)) => Segmenter::ClientServer {
            server: s.clone(),
            tls: a.tls.identity(blindfold_net::TlsRole::Client)?,
        },
        _ => bail!(
            "remote segmentation: --mode two-server --servers P0,P1, or --mode client-server --server ADDR (without them the secure modes run on loopback in this process)"
        ),
    };
    let s = how.segment(&m, &q, map, &x)?;
    let k = a.scale as usize;
    let png = data_png(picture::encode_mask_png(
        map.rows * k,
        map.cols * k,
        &scale_mask(map.rows, map.cols, &s.mask, k),
    ))?;
    write(&a.out, &png)?;
    if let Some(sheet) = &a.sheet {
        let mut panels = Vec::new();
        if let [1, h, w] = *m.input_shape().dims() {
            panels.push((gray(h, w, &x)?, "input"));
        }
        let mode = how.name();
        panels.push((mask_picture(map, &s.mask)?, mode.as_str()));
        let sheet_png = data_png(picture::side_by_side(&panels, k.max(4)).encode_png())?;
        write(sheet, &sheet_png)?;
    }
    let out = SegmentOutput {
        model: m.name.clone(),
        mode: how.name(),
        input: a.input.clone(),
        out: a.out.clone(),
        sheet: a.sheet.clone(),
        rows: map.rows,
        cols: map.cols,
        classes: map.classes,
        scale: a.scale,
        pixels: segment::class_counts(&s.mask, map.classes),
        cost: s.cost,
    };
    if a.json {
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    println!(
        "model {} ({}): {}x{} mask of {} classes -> {}",
        out.model,
        out.mode,
        out.rows,
        out.cols,
        out.classes,
        out.out.display()
    );
    let parts: Vec<String> = out
        .pixels
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .map(|(c, n)| format!("{} {n}", class_name(c)))
        .collect();
    println!("pixels per class: {}", parts.join(", "));
    if let Some(sheet) = &out.sheet {
        println!("input and mask side by side: {}", sheet.display());
    }
    if let Some(c) = &out.cost {
        println!(
            "latency {:.1} ms at the client; servers: offline {:.1} ms, online {:.1} ms; {:.2} MB in all",
            c.latency_ms,
            c.offline_ms,
            c.online_ms,
            c.bytes as f64 / 1e6
        );
    }
    Ok(())
}

/// An encoder's result as an `anyhow` result.
fn data_png(r: std::result::Result<Vec<u8>, data::DataError>) -> Result<Vec<u8>> {
    r.context("encoding a PNG")
}

/// `class 0 (background)`, `class 3`.
fn class_name(c: usize) -> String {
    if c == 0 {
        "class 0 (background)".into()
    } else {
        format!("class {c}")
    }
}

fn gray(h: usize, w: usize, x: &[f32]) -> Result<Picture> {
    Picture::gray(h, w, &picture::unit_to_gray(x)).context("drawing the input")
}

fn mask_picture(map: MapShape, mask: &[u32]) -> Result<Picture> {
    Picture::mask(map.rows, map.cols, mask).context("drawing a mask")
}

/// One summary row of the Dice table.
type Summary = fn(&DiceReport) -> Option<f64>;

/// `eval`'s table for a segmentation model: Dice per class and mode.
pub fn print_dice(r: &EvalReport, s: &SegmentationEval) {
    println!(
        "segmentation: {} classes, {}x{} masks; Dice = 2|P&T| / (|P| + |T|) over all {} items' pixels",
        s.classes, s.rows, s.cols, r.n
    );
    let cols: Vec<(&str, &DiceReport)> = [
        Some(("float", &s.float)),
        s.plain.as_ref().map(|d| ("plain", d)),
        s.secure.as_ref().map(|d| (r.mode.name(), d)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    let mut head = format!("{:<22}", "Dice");
    for (name, _) in &cols {
        head.push_str(&format!(" {name:>10}"));
    }
    head.push_str(&format!(" {:>12}", "true pixels"));
    println!("{head}");
    for c in 0..s.classes {
        let present = cols.iter().any(|(_, d)| d.per_class[c].is_some());
        if !present {
            continue;
        }
        let mut line = format!("{:<22}", class_name(c));
        for (_, d) in &cols {
            line.push_str(&format!(" {:>10}", cell(d.per_class[c])));
        }
        line.push_str(&format!(" {:>12}", s.float.truth_pixels[c]));
        println!("{line}");
    }
    let absent = (0..s.classes)
        .filter(|&c| cols.iter().all(|(_, d)| d.per_class[c].is_none()))
        .count();
    let rows: [(&str, Summary); 4] = [
        ("mean (classes present)", |d| d.mean),
        ("mean over foreground", |d| d.mean_foreground),
        ("foreground vs backgr.", |d| d.foreground),
        ("pixel accuracy", |d| d.pixel_accuracy),
    ];
    for (name, f) in rows {
        let mut line = format!("{name:<22}");
        for (_, d) in &cols {
            line.push_str(&format!(" {:>10}", cell(f(d))));
        }
        println!("{line}");
    }
    if absent > 0 {
        println!(
            "({absent} classes in neither the masks nor the predictions: left out of the means)"
        );
    }
    let of = |v: f64| format!("{:.0}/{}", v * r.n as f64, r.n);
    if let Some(v) = s.plain_float_mask_exact {
        println!("masks: plain = float on {} items", of(v));
    }
    if let (Some(v), Some(sec)) = (s.mask_exact, &r.secure) {
        println!(
            "masks: secure = plain on {} items (mask_exact {:.2}%; bit-exact outputs {:.2}%)",
            of(v),
            100.0 * v,
            100.0 * sec.bit_exact
        );
    }
}

#[derive(Args)]
pub struct SegmentDemoArgs {
    /// Where the pictures go (one PNG per canvas: input, truth, plaintext
    /// mask, secure mask); default: blindfold-segment-demo in the system's
    /// temporary directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Enlarge the pictures by this whole factor.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub scale: u32,
}

/// Dice over foreground classes of one item (`None`: none present).
fn item_dice(classes: usize, pred: &[u32], truth: &[u8]) -> Result<Option<f64>> {
    let mut d = DiceCounts::new(classes);
    d.add(pred, truth)?;
    Ok(d.mean_foreground())
}

/// The segmentation demo: `count` canvases through both servers (TLS, on
/// loopback) and the plaintext reference; Dice against the truth, whether the
/// masks are identical, and a picture per canvas.
pub fn demo(
    m: &Model,
    q: &QModel,
    mode: secure_cmds::DeployArg,
    count: usize,
    data: Option<PathBuf>,
    a: &SegmentDemoArgs,
) -> Result<()> {
    let map = map_of(m)?;
    let dir = data.unwrap_or_else(paths::default_segmentation_data);
    let ds = data::load_idx_dir(&dir)?;
    if mode == secure_cmds::DeployArg::Fhe {
        bail!("segmentation models use ReLU and max-pool, which FHE mode cannot evaluate; use --mode two-server or client-server");
    }
    let masks = check_segmentation_set(&ds, &dir, m, map)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("blindfold-segment-demo"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let who = match mode {
        secure_cmds::DeployArg::TwoServer => {
            "split into two shares; servers P0 and P1 and a client on loopback"
        }
        secure_cmds::DeployArg::ClientServer | secure_cmds::DeployArg::Fhe => {
            "held in clear by one server; the server and a client on loopback"
        }
    };
    println!(
        "blindfold segmentation demo: model {} ({} classes, {}x{} masks) {who}",
        m.name, map.classes, map.rows, map.cols
    );
    println!("the servers compute the per-pixel argmax in a garbled circuit: the client receives the mask alone; the plaintext reference runs beside it\n");
    let n = count.min(ds.len());
    let deployment = match mode {
        secure_cmds::DeployArg::TwoServer => blindfold_engine::Deployment::TwoServer,
        secure_cmds::DeployArg::ClientServer | secure_cmds::DeployArg::Fhe => {
            blindfold_engine::Deployment::ClientServer
        }
    };
    let t = std::time::Instant::now();
    let pool = n.clamp(1, 4);
    eprint!("{deployment}: starting on loopback, preprocessing {pool} queries... ");
    let mut secure = infer::LocalInference::start(q, deployment, pool)?;
    eprintln!("{:.1} s", t.elapsed().as_secs_f64());
    println!(
        "{:>6} {:<14} {:>11} {:>11} {:>10} {:>10} {:>10} {:>9}",
        "canvas",
        "true classes",
        "plain Dice",
        "secure Dice",
        "identical",
        "client ms",
        "online ms",
        "total MB"
    );
    let (mut dp, mut dsec) = (DiceCounts::new(map.classes), DiceCounts::new(map.classes));
    let mut same = 0;
    let mut pictures = Vec::new();
    let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    for i in 0..n {
        let x = ds.image_f32(i);
        let truth = masks.mask(i);
        // The mask alone: the per-pixel argmax runs in a garbled circuit.
        let ans = secure.infer_kind(&x, blindfold_engine::party::OutputKind::Label)?;
        let ms = ans
            .mask
            .clone()
            .context("the secure answer carries no mask")?;
        let cost = ans.cost.clone().unwrap_or_default();
        let mp = segment::argmax_map_ring(map, &plain::run_plain(q, &x)?)?;
        dp.add(&mp, truth)?;
        dsec.add(&ms, truth)?;
        let identical = ms == mp;
        same += identical as usize;
        let present: Vec<String> = segment::class_counts(
            &truth.iter().map(|&c| c as u32).collect::<Vec<_>>(),
            map.classes,
        )
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, &k)| k > 0)
        .map(|(c, _)| c.to_string())
        .collect();
        let total_bytes = cost.bytes;
        println!(
            "{:>6} {:<14} {:>11} {:>11} {:>10} {:>10.1} {:>10.1} {:>9.2}",
            i,
            present.join(" "),
            cell(item_dice(map.classes, &mp, truth)?),
            cell(item_dice(map.classes, &ms, truth)?),
            if identical { "yes" } else { "NO" },
            cost.latency_ms,
            cost.online_ms,
            total_bytes as f64 / 1e6
        );
        let truth32: Vec<u32> = truth.iter().map(|&c| c as u32).collect();
        let sheet = picture::side_by_side(
            &[
                (Picture::gray(ds.rows, ds.cols, ds.image(i))?, "input"),
                (mask_picture(map, &truth32)?, "truth"),
                (mask_picture(map, &mp)?, "plain"),
                (mask_picture(map, &ms)?, "secure"),
            ],
            a.scale as usize,
        );
        let path = out.join(format!("canvas{i}.png"));
        write(&path, &data_png(sheet.encode_png())?)?;
        pictures.push(path);
    }
    println!();
    let (p, s) = (dp.report(), dsec.report());
    println!(
        "{n} canvases: Dice over all pixels, mean over foreground classes: plain {}, secure {}; foreground vs background: plain {}, secure {}",
        cell(p.mean_foreground),
        cell(s.mean_foreground),
        cell(p.foreground),
        cell(s.foreground)
    );
    println!("secure mask = plaintext mask on {same}/{n} canvases");
    match (pictures.first(), pictures.last()) {
        (Some(first), Some(last)) if pictures.len() > 1 => println!(
            "pictures (input | truth | plain | secure): {} ... {}",
            first.display(),
            last.display()
        ),
        (Some(first), _) => println!(
            "picture (input | truth | plain | secure): {}",
            first.display()
        ),
        _ => {}
    }
    if same != n {
        bail!("secure and plaintext masks differ on {} canvases", n - same);
    }
    Ok(())
}

/// The masks of a segmentation set for `m`, or an error saying what does not
/// fit.
pub fn check_segmentation_set<'a>(
    ds: &'a Dataset,
    dir: &Path,
    m: &Model,
    map: MapShape,
) -> Result<&'a data::Masks> {
    let Some(masks) = ds.masks.as_ref() else {
        bail!(
            "{} has no per-pixel masks ({} beside images.idx3-ubyte)",
            dir.display(),
            data::MASKS_FILE
        );
    };
    if ds.rows * ds.cols != m.input_shape().numel() {
        bail!(
            "dataset images are {}x{} but model {} takes input {}",
            ds.rows,
            ds.cols,
            m.name,
            m.input_shape()
        );
    }
    if [masks.rows, masks.cols] != [map.rows, map.cols] {
        bail!(
            "the masks in {} are {}x{} but model {} outputs {}x{} maps",
            dir.display(),
            masks.rows,
            masks.cols,
            m.name,
            map.rows,
            map.cols
        );
    }
    Ok(masks)
}
