//! `blindfold._native`: the Rust half of the Python package.
//!
//! The Python half (`pysrc/blindfold/__init__.py`) turns numpy arrays into
//! flat `float32` lists and JSON answers into dicts and arrays; this module
//! does the work, with the GIL released while it runs (loading and quantizing,
//! evaluation, splitting, every protocol). Errors are `blindfold.BlindfoldError`
//! with the message the CLI prints for the same failure.

use anyhow::{bail, Context};
use blindfold_core::{FracBits, LinkSpec, Prg};
use blindfold_engine::infer::{self, Mode};
use blindfold_engine::party::OutputKind;
use blindfold_engine::plan::{Deployment, Plan};
use blindfold_engine::serve::{self, Answer, CsClient, LocalCluster, LocalCsServer, ServeConfig};
use blindfold_fhe::files::Server as FheServer;
use blindfold_fhe::lower::FheQuant;
use blindfold_fhe::service::{self as fhe_service, FheClient, ServiceConfig as FheServiceConfig};
use blindfold_fhe::{FheModel, Layout};
use blindfold_model::data::{load_idx_dir, Dataset};
use blindfold_model::quant::{quantize_with, NonLinear, QModel, QuantConfig};
use blindfold_model::{load_onnx, summary, Model};
use blindfold_net::{TcpChannel, TcpTransport, TlsChannel, TlsIdentity, TlsRole};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

create_exception!(
    blindfold,
    BlindfoldError,
    PyException,
    "An error from blindfold, with the message the CLI prints for it."
);

/// The CLI's error text: every cause once, joined by ": ".
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

fn py_err(e: anyhow::Error) -> PyErr {
    BlindfoldError::new_err(describe(&e))
}

type Result<T> = anyhow::Result<T>;

/// Where zoo models live: `BLINDFOLD_HOME`, else the working directory if it
/// holds `models/zoo.json`, else the source tree this module was built from.
fn home() -> PathBuf {
    if let Ok(h) = std::env::var("BLINDFOLD_HOME") {
        return PathBuf::from(h);
    }
    let cwd = PathBuf::from(".");
    if cwd.join("models").join("zoo.json").exists() {
        return cwd;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A model argument: an existing path, or a zoo name (as the CLI resolves it).
fn model_path(arg: &str) -> Result<PathBuf> {
    let p = PathBuf::from(arg);
    if p.exists() {
        return Ok(p);
    }
    let z = home().join("models").join(format!("{arg}.onnx"));
    if z.exists() {
        return Ok(z);
    }
    bail!("no model file '{arg}' and no zoo model of that name (see `blindfold zoo`)")
}

fn parse_mode(mode: &str) -> Result<Mode> {
    Mode::from_name(mode).with_context(|| {
        format!("unknown mode '{mode}' (one of: plain, float, two-server, client-server)")
    })
}

fn check_input(q: &QModel, x: &[f32]) -> Result<()> {
    let need = q.input_shape().numel();
    if x.len() != need {
        bail!(
            "input has {} values, the model takes {} ({:?})",
            x.len(),
            need,
            q.input_shape().dims()
        );
    }
    if let Some(bad) = x.iter().find(|v| !v.is_finite()) {
        bail!("input holds a value that is not a finite number ({bad})");
    }
    Ok(())
}

/// A model: the float graph as imported and its fixed-point program.
#[pyclass(frozen, module = "blindfold._native")]
struct NativeModel {
    model: Model,
    q: QModel,
}

#[pymethods]
impl NativeModel {
    /// Load an ONNX file or a zoo model by name and quantize it.
    #[staticmethod]
    #[pyo3(signature = (path, frac_bits = 12, nonlinear = "auto", link = None))]
    fn load(
        py: Python<'_>,
        path: String,
        frac_bits: u32,
        nonlinear: &str,
        link: Option<String>,
    ) -> PyResult<NativeModel> {
        let nonlinear = nonlinear.to_string();
        py.detach(move || -> Result<NativeModel> {
            let link = match link {
                Some(l) => LinkSpec::parse(&l).map_err(|e| anyhow::anyhow!("{e}"))?,
                None => LinkSpec::LAN,
            };
            let nonlinear = match nonlinear.as_str() {
                "auto" => NonLinear::Auto(link),
                "gc" => NonLinear::Gc,
                "ot" => NonLinear::Ot,
                other => bail!("unknown non-linear protocol '{other}' (one of: auto, gc, ot)"),
            };
            if !(1..=30).contains(&frac_bits) {
                bail!("frac_bits must be between 1 and 30, not {frac_bits}");
            }
            let p = model_path(&path)?;
            let model = load_onnx(&p)?;
            let cfg = QuantConfig {
                nonlinear,
                ..QuantConfig::new(FracBits(frac_bits))
            };
            let q = quantize_with(&model, &cfg)?;
            Ok(NativeModel { model, q })
        })
        .map_err(py_err)
    }

    /// The model's name.
    #[getter]
    fn name(&self) -> String {
        self.model.name.clone()
    }

    /// The input shape.
    #[getter]
    fn input_shape(&self) -> Vec<usize> {
        self.q.input_shape().dims().to_vec()
    }

    /// The output shape.
    #[getter]
    fn output_shape(&self) -> Vec<usize> {
        self.model.output_shape().dims().to_vec()
    }

    /// `inspect --json`: summary, layers with their protocol in `mode`.
    #[pyo3(signature = (mode = "two-server"))]
    fn inspect_json(&self, mode: &str) -> PyResult<String> {
        (|| -> Result<String> {
            let d = Deployment::from_name(mode).with_context(|| {
                format!("unknown mode '{mode}' (one of: two-server, client-server)")
            })?;
            let survey = Plan::survey(&self.q, d);
            let supported = survey.iter().all(|r| r.protocol.is_ok());
            let mut v = serde_json::to_value(summary::summarize(&self.q))?;
            v["mode"] = d.name().into();
            v["supported"] = supported.into();
            v["nonlinear_protocol"] = self.q.nonlinear.name().into();
            if let Some(layers) = v["layers"].as_array_mut() {
                for (l, r) in layers.iter_mut().zip(&survey) {
                    match &r.protocol {
                        Ok(p) => l["protocol"] = p.clone().into(),
                        Err(why) => l["unsupported"] = why.to_string().into(),
                    }
                }
            }
            Ok(serde_json::to_string(&v)?)
        })()
        .map_err(py_err)
    }

    /// One input through `mode` (plain, float, two-server, client-server; the
    /// secure modes start their servers on loopback for this one input):
    /// the prediction as JSON.
    #[pyo3(signature = (x, mode = "plain"))]
    fn run_json(&self, py: Python<'_>, x: Vec<f32>, mode: &str) -> PyResult<String> {
        py.detach(|| -> Result<String> {
            let mode = parse_mode(mode)?;
            check_input(&self.q, &x)?;
            let mut inf = infer::open(mode, &self.model, &self.q)?;
            let p = inf.infer(&x)?;
            Ok(serde_json::to_string(&p)?)
        })
        .map_err(py_err)
    }

    /// Evaluate on an IDX directory (`images.idx3-ubyte`, `labels.idx1-ubyte`).
    #[pyo3(signature = (dir, mode = "plain", limit = None))]
    fn evaluate_dir(
        &self,
        py: Python<'_>,
        dir: String,
        mode: &str,
        limit: Option<usize>,
    ) -> PyResult<String> {
        py.detach(|| -> Result<String> {
            let ds = load_idx_dir(Path::new(&dir))?;
            self.evaluate(&ds, mode, limit)
        })
        .map_err(py_err)
    }

    /// Evaluate on `n` images of `rows × cols` bytes (0..255) and their labels.
    #[pyo3(signature = (images, rows, cols, labels, mode = "plain", limit = None))]
    #[allow(clippy::too_many_arguments)]
    fn evaluate_arrays(
        &self,
        py: Python<'_>,
        images: Vec<u8>,
        rows: usize,
        cols: usize,
        labels: Vec<u8>,
        mode: &str,
        limit: Option<usize>,
    ) -> PyResult<String> {
        py.detach(|| -> Result<String> {
            if rows == 0 || cols == 0 || images.len() != labels.len() * rows * cols {
                bail!(
                    "{} image bytes do not make {} images of {rows}x{cols}",
                    images.len(),
                    labels.len()
                );
            }
            let ds = Dataset {
                rows,
                cols,
                images,
                labels,
                masks: None,
            };
            self.evaluate(&ds, mode, limit)
        })
        .map_err(py_err)
    }

    /// Split into two share files in `out_dir` (owner read/write only);
    /// returns their paths.
    fn split(&self, py: Python<'_>, out_dir: String) -> PyResult<(String, String)> {
        py.detach(|| -> Result<(String, String)> {
            let dir = PathBuf::from(&out_dir);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let [s0, s1] = blindfold_engine::share::split_for(
                &self.q,
                Deployment::TwoServer,
                &mut Prg::from_entropy(),
            )?;
            let p0 = dir.join("party0.share");
            let p1 = dir.join("party1.share");
            write_private(&p0, &s0.to_bytes())?;
            write_private(&p1, &s1.to_bytes())?;
            Ok((p0.display().to_string(), p1.display().to_string()))
        })
        .map_err(py_err)
    }
}

impl NativeModel {
    fn evaluate(&self, ds: &Dataset, mode: &str, limit: Option<usize>) -> Result<String> {
        let mode = parse_mode(mode)?;
        let n = limit.unwrap_or(ds.len()).min(ds.len());
        let r = infer::evaluate(&self.model, &self.q, ds, n, mode, &mut |_| {})?;
        Ok(serde_json::to_string(&r)?)
    }
}

/// A share file, owner read/write only, never over an existing file (as the
/// CLI's `split`).
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    blindfold_engine::share::write_new_private(path, bytes).with_context(|| {
        format!(
            "creating {} (an existing file is never overwritten: remove it first)",
            path.display()
        )
    })
}

fn answer_json(a: &Answer) -> Result<String> {
    Ok(serde_json::to_string(&serde_json::json!({
        "label": a.label,
        "scores": a.scores,
        "ring": a.ring,
        "mask": a.mask,
        "latency_ms": a.latency_ms,
        "client_bytes": a.client_bytes,
        "server_online_bytes": a.cost[0].online_bytes,
        "server_offline_bytes": a.cost[0].offline_bytes + a.cost[1].offline_bytes,
        "online_rounds": a.cost[0].online_rounds,
    }))?)
}

fn kind(label_only: bool) -> OutputKind {
    if label_only {
        OutputKind::Label
    } else {
        OutputKind::Logits
    }
}

const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of two servers (P0 first, P1 second).
#[pyclass(frozen, module = "blindfold._native")]
struct NativeClient {
    servers: [String; 2],
    tls: Option<TlsIdentity>,
}

#[pymethods]
impl NativeClient {
    /// `tls_dir`: the deployment's certificates (`blindfold certs`); `None`
    /// only with `insecure_plaintext=True` (loopback tests).
    #[new]
    #[pyo3(signature = (servers, tls_dir = None, insecure_plaintext = false))]
    fn new(
        servers: Vec<String>,
        tls_dir: Option<String>,
        insecure_plaintext: bool,
    ) -> PyResult<NativeClient> {
        (|| -> Result<NativeClient> {
            let [a, b]: [String; 2] = servers.try_into().map_err(|v: Vec<String>| {
                anyhow::anyhow!("two servers are needed (P0, P1), not {}", v.len())
            })?;
            let tls = match (tls_dir, insecure_plaintext) {
                (Some(dir), _) => Some(
                    TlsIdentity::load(Path::new(&dir), TlsRole::Client).with_context(|| {
                        format!("loading the client TLS identity from {dir}")
                    })?,
                ),
                (None, true) => None,
                (None, false) => bail!(
                    "give tls_dir (certificates from `blindfold certs --out DIR`), or insecure_plaintext=True for a loopback test"
                ),
            };
            Ok(NativeClient {
                servers: [a, b],
                tls,
            })
        })()
        .map_err(py_err)
    }

    /// Query both servers: the answer as JSON.
    #[pyo3(signature = (x, label_only = false))]
    fn query_json(&self, py: Python<'_>, x: Vec<f32>, label_only: bool) -> PyResult<String> {
        py.detach(|| -> Result<String> {
            let servers = [self.servers[0].as_str(), self.servers[1].as_str()];
            let a = match &self.tls {
                Some(id) => {
                    let t = id.transport(None)?;
                    serve::query_on(&t, servers, &x, QUERY_TIMEOUT, kind(label_only))?
                }
                None => {
                    serve::query_on(&TcpTransport, servers, &x, QUERY_TIMEOUT, kind(label_only))?
                }
            };
            answer_json(&a)
        })
        .map_err(py_err)
    }
}

/// Both servers of one split on loopback TCP, in this process.
#[pyclass(frozen, module = "blindfold._native")]
struct NativeCluster {
    /// Taken (and the servers stopped) by `close`; queries run on a clone of
    /// the `Arc`, so several Python threads can query at once and `close`
    /// never waits for a query while holding the GIL.
    cluster: Mutex<Option<Arc<LocalCluster>>>,
    input_len: usize,
}

impl NativeCluster {
    fn current(&self) -> Option<Arc<LocalCluster>> {
        self.cluster
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[pymethods]
impl NativeCluster {
    #[new]
    #[pyo3(signature = (model, pool = 2))]
    fn new(py: Python<'_>, model: &NativeModel, pool: usize) -> PyResult<NativeCluster> {
        py.detach(|| -> Result<NativeCluster> {
            let c = LocalCluster::start(&model.q, pool.max(1), &mut Prg::from_entropy())?;
            Ok(NativeCluster {
                cluster: Mutex::new(Some(Arc::new(c))),
                input_len: model.q.input_shape().numel(),
            })
        })
        .map_err(py_err)
    }

    /// The servers' addresses (P0, P1); empty once closed.
    #[getter]
    fn addresses(&self) -> Vec<String> {
        self.current().map(|c| c.addrs.to_vec()).unwrap_or_default()
    }

    /// Query the cluster: the answer as JSON.
    #[pyo3(signature = (x, label_only = false))]
    fn query_json(&self, py: Python<'_>, x: Vec<f32>, label_only: bool) -> PyResult<String> {
        let cluster = self.current();
        py.detach(move || -> Result<String> {
            let c = cluster.context("the cluster was stopped")?;
            if x.len() != self.input_len {
                bail!(
                    "input has {} values, the model takes {}",
                    x.len(),
                    self.input_len
                );
            }
            answer_json(&c.query_kind(&x, kind(label_only))?)
        })
        .map_err(py_err)
    }

    /// Stop both servers (also done when the object is collected); waits for
    /// queries under way.
    fn close(&self, py: Python<'_>) {
        let taken = self
            .cluster
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        // The servers stop when the last clone (a query under way) is dropped.
        py.detach(move || drop(taken));
    }
}

/// A client-server client's connection, over TCP or TLS.
enum AnyCsClient {
    Tcp(CsClient<TcpChannel>),
    Tls(CsClient<TlsChannel>),
}

/// A client of one client-server server (`blindfold serve --mode client-server`):
/// the server holds the model in clear, only this client learns the answer.
#[pyclass(frozen, module = "blindfold._native")]
struct NativeCsClient {
    client: Mutex<AnyCsClient>,
}

#[pymethods]
impl NativeCsClient {
    #[new]
    #[pyo3(signature = (server, tls_dir = None, insecure_plaintext = false))]
    fn new(
        py: Python<'_>,
        server: String,
        tls_dir: Option<String>,
        insecure_plaintext: bool,
    ) -> PyResult<NativeCsClient> {
        py.detach(move || -> Result<NativeCsClient> {
            let client = match (tls_dir, insecure_plaintext) {
                (Some(dir), _) => {
                    let id = TlsIdentity::load(Path::new(&dir), TlsRole::Client)
                        .with_context(|| format!("loading the client TLS identity from {dir}"))?;
                    let t = id.transport(Some(TlsRole::P0))?;
                    AnyCsClient::Tls(CsClient::connect_on(&t, &server, QUERY_TIMEOUT)?)
                }
                (None, true) => AnyCsClient::Tcp(CsClient::connect(&server, QUERY_TIMEOUT)?),
                (None, false) => bail!(
                    "give tls_dir (certificates from `blindfold certs --out DIR`), or insecure_plaintext=True for a loopback test"
                ),
            };
            Ok(NativeCsClient {
                client: Mutex::new(client),
            })
        })
        .map_err(py_err)
    }

    /// Run the offline phase for up to `n` queries now (the pool's size bounds it).
    fn preprocess(&self, py: Python<'_>, n: usize) -> PyResult<()> {
        py.detach(|| -> Result<()> {
            match &mut *self.client.lock().unwrap_or_else(|p| p.into_inner()) {
                AnyCsClient::Tcp(c) => c.preprocess(n)?,
                AnyCsClient::Tls(c) => c.preprocess(n)?,
            }
            Ok(())
        })
        .map_err(py_err)
    }

    /// Query: the answer as JSON.
    #[pyo3(signature = (x, label_only = false))]
    fn query_json(&self, py: Python<'_>, x: Vec<f32>, label_only: bool) -> PyResult<String> {
        py.detach(|| -> Result<String> {
            let a = match &mut *self.client.lock().unwrap_or_else(|p| p.into_inner()) {
                AnyCsClient::Tcp(c) => c.query(&x, kind(label_only))?,
                AnyCsClient::Tls(c) => c.query(&x, kind(label_only))?,
            };
            Ok(serde_json::to_string(&serde_json::json!({
                "label": a.label,
                "scores": a.scores,
                "ring": a.ring,
                "mask": a.mask,
                "latency_ms": a.latency_ms,
                "client_bytes": a.offline_bytes + a.online_bytes,
                "preprocessed_first": a.preprocessed_first,
                "offline_ms": a.offline_ms,
                "online_ms": a.online_ms,
            }))?)
        })
        .map_err(py_err)
    }
}

/// A client-server server in this process on loopback TCP (tests, notebooks).
#[pyclass(frozen, module = "blindfold._native")]
struct NativeCsServer {
    server: Mutex<Option<LocalCsServer>>,
    addr: String,
}

#[pymethods]
impl NativeCsServer {
    #[new]
    fn new(py: Python<'_>, model: &NativeModel) -> PyResult<NativeCsServer> {
        py.detach(|| -> Result<NativeCsServer> {
            let s = LocalCsServer::start(&model.q, ServeConfig::default())?;
            let addr = s.addr.clone();
            Ok(NativeCsServer {
                server: Mutex::new(Some(s)),
                addr,
            })
        })
        .map_err(py_err)
    }

    #[getter]
    fn address(&self) -> String {
        self.addr.clone()
    }

    fn close(&self, py: Python<'_>) {
        let taken = self.server.lock().unwrap_or_else(|p| p.into_inner()).take();
        py.detach(move || drop(taken));
    }
}

/// The FHE quantization of the Python arguments (the CLI's `--input-bits`,
/// `--weight-bits`, `--input-range`).
fn fhe_quant(input_bits: u32, weight_bits: u32, input_range: (f32, f32)) -> FheQuant {
    FheQuant {
        input_bits,
        weight_bits,
        input_range,
    }
}

fn fhe_layout(layout: &str) -> Result<Layout> {
    match layout {
        "batch" => Ok(Layout::Batch),
        "latency" => Ok(Layout::Latency),
        other => bail!("unknown FHE layout '{other}' (batch or latency)"),
    }
}

/// Integers of an FHE result as decimal strings (they are `i128`, wider than
/// JSON numbers are safe for).
fn ints(y: &[i128]) -> Vec<String> {
    y.iter().map(|v| v.to_string()).collect()
}

/// An FHE server in this process on loopback TCP (tests, notebooks): the
/// model in clear, no secret key; the same service as `blindfold serve --mode
/// fhe`.
#[pyclass(frozen, module = "blindfold._native")]
struct NativeFheServer {
    server: Arc<FheServer>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    addr: String,
}

#[pymethods]
impl NativeFheServer {
    #[new]
    #[pyo3(signature = (model, layout = "batch", input_bits = 6, weight_bits = 6, input_range = (0.0, 1.0)))]
    fn new(
        py: Python<'_>,
        model: &NativeModel,
        layout: &str,
        input_bits: u32,
        weight_bits: u32,
        input_range: (f32, f32),
    ) -> PyResult<NativeFheServer> {
        let layout = fhe_layout(layout).map_err(py_err)?;
        let m = model.model.clone();
        py.detach(move || -> Result<NativeFheServer> {
            let quant = fhe_quant(input_bits, weight_bits, input_range);
            let fm = FheModel::new(&m, quant, layout)?;
            let server = Arc::new(FheServer::new(fm)?);
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            let addr = listener.local_addr()?.to_string();
            let acceptor = blindfold_net::TcpAcceptor::new(listener)?;
            let stop = Arc::new(AtomicBool::new(false));
            let cfg = FheServiceConfig {
                verbose: false,
                ..FheServiceConfig::default()
            };
            let (s, st) = (server.clone(), stop.clone());
            let thread = std::thread::spawn(move || {
                let _ = fhe_service::run(s, acceptor, cfg, st);
            });
            Ok(NativeFheServer {
                server,
                stop,
                thread: Mutex::new(Some(thread)),
                addr,
            })
        })
        .map_err(py_err)
    }

    #[getter]
    fn address(&self) -> String {
        self.addr.clone()
    }

    /// The public profile clients make keys from, as JSON.
    fn profile_json(&self) -> PyResult<String> {
        profile_json(&self.server.model.profile()).map_err(py_err)
    }

    /// The exact integer reference of the lowered program for one input (what
    /// every FHE answer must decrypt to), as decimal strings.
    fn reference_json(&self, py: Python<'_>, x: Vec<f32>) -> PyResult<String> {
        py.detach(|| -> Result<String> {
            let p = &self.server.model.program;
            let y = p.run(&p.encode_input(&x)?);
            Ok(serde_json::to_string(&serde_json::json!({
                "outputs": ints(&y),
                "scores": p.decode(&y),
            }))?)
        })
        .map_err(py_err)
    }

    fn close(&self, py: Python<'_>) {
        self.stop.store(true, Ordering::SeqCst);
        let t = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        py.detach(move || {
            if let Some(t) = t {
                let _ = t.join();
            }
        });
    }
}

impl Drop for NativeFheServer {
    /// Collected without `close()`: stop accepting (the thread ends by itself).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn profile_json(p: &blindfold_fhe::Profile) -> Result<String> {
    Ok(serde_json::to_string(&serde_json::json!({
        "name": p.name,
        "layout": p.params.layout.name(),
        "input_shape": p.input_shape,
        "input_len": p.input_len,
        "output_len": p.output_len,
        "max_batch": match p.params.layout {
            Layout::Batch => p.params.slots(),
            Layout::Latency => 1,
        },
        "parameters": p.params.describe(),
        "input_bits": p.quant.input_bits,
        "weight_bits": p.quant.weight_bits,
        "input_range": [p.quant.input_range.0, p.quant.input_range.1],
    }))?)
}

/// An FHE client's connection, over TCP or TLS.
enum AnyFheClient {
    Tcp(FheClient<TcpChannel>),
    Tls(FheClient<TlsChannel>),
}

impl AnyFheClient {
    fn profile(&self) -> &blindfold_fhe::Profile {
        match self {
            AnyFheClient::Tcp(c) => c.profile(),
            AnyFheClient::Tls(c) => c.profile(),
        }
    }
}

/// A client of one FHE server (`blindfold serve --mode fhe`): keys are made
/// here and the secret key never leaves this object; the evaluation keys go
/// to the server once, at connection.
#[pyclass(frozen, module = "blindfold._native")]
struct NativeFheClient {
    /// `None` once closed.
    client: Mutex<Option<AnyFheClient>>,
    key_bytes: usize,
    /// The server's profile as JSON, read once (no lock needed to read it).
    profile: String,
}

#[pymethods]
impl NativeFheClient {
    #[new]
    #[pyo3(signature = (server, tls_dir = None, insecure_plaintext = false, timeout_s = 600))]
    fn new(
        py: Python<'_>,
        server: String,
        tls_dir: Option<String>,
        insecure_plaintext: bool,
        timeout_s: u64,
    ) -> PyResult<NativeFheClient> {
        py.detach(move || -> Result<NativeFheClient> {
            let timeout = Duration::from_secs(timeout_s.clamp(1, 86_400));
            let mut rng = Prg::from_entropy();
            let client = match (tls_dir, insecure_plaintext) {
                (Some(dir), _) => {
                    let id = TlsIdentity::load(Path::new(&dir), TlsRole::Client)
                        .with_context(|| format!("loading the client TLS identity from {dir}"))?;
                    let t = id.transport(Some(TlsRole::P0))?;
                    AnyFheClient::Tls(
                        FheClient::connect(&t, &server, timeout, &mut rng)
                            .with_context(|| format!("connecting to the FHE server at {server}"))?,
                    )
                }
                (None, true) => AnyFheClient::Tcp(
                    FheClient::connect(&TcpTransport, &server, timeout, &mut rng)
                        .with_context(|| format!("connecting to the FHE server at {server}"))?,
                ),
                (None, false) => bail!(
                    "give tls_dir (certificates from `blindfold certs --out DIR`), or insecure_plaintext=True for a loopback test"
                ),
            };
            let key_bytes = match &client {
                AnyFheClient::Tcp(c) => c.key_bytes,
                AnyFheClient::Tls(c) => c.key_bytes,
            };
            Ok(NativeFheClient {
                profile: profile_json(client.profile())?,
                client: Mutex::new(Some(client)),
                key_bytes,
            })
        })
        .map_err(py_err)
    }

    /// Bytes of the evaluation keys sent to the server.
    #[getter]
    fn key_bytes(&self) -> usize {
        self.key_bytes
    }

    /// The server's public profile, as JSON.
    fn profile_json(&self) -> String {
        self.profile.clone()
    }

    /// Close the connection (the server drops this client's evaluation keys).
    fn close(&self, py: Python<'_>) {
        // The lock is taken without the GIL: a query under way holds it.
        py.detach(|| drop(self.client.lock().unwrap_or_else(|p| p.into_inner()).take()));
    }

    /// Encrypt `xs` (one batch, or one latency query each), send, decrypt.
    fn query_json(&self, py: Python<'_>, xs: Vec<Vec<f32>>) -> PyResult<String> {
        py.detach(|| -> Result<String> {
            let mut rng = Prg::from_entropy();
            let t = std::time::Instant::now();
            let mut guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
            let Some(c) = guard.as_mut() else {
                bail!("this FHE client is closed");
            };
            let a = match &mut *c {
                AnyFheClient::Tcp(c) => c.query(&xs, &mut rng)?,
                AnyFheClient::Tls(c) => c.query(&xs, &mut rng)?,
            };
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let p = c.profile();
            let answers: Vec<serde_json::Value> = a
                .outputs
                .iter()
                .map(|y| {
                    let scores = p.decode(y);
                    serde_json::json!({
                        "label": argmax(&scores),
                        "scores": scores,
                        "outputs": ints(y),
                    })
                })
                .collect();
            Ok(serde_json::to_string(&serde_json::json!({
                "answers": answers,
                "noise_budget_bits": a.noise_budget,
                "upload_bytes": a.upload_bytes,
                "download_bytes": a.download_bytes,
                "latency_ms": ms,
            }))?)
        })
        .map_err(py_err)
    }
}

/// Index of the largest score (the first of equals), as the CLI reports it.
fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("BlindfoldError", m.py().get_type::<BlindfoldError>())?;
    m.add_class::<NativeModel>()?;
    m.add_class::<NativeClient>()?;
    m.add_class::<NativeCluster>()?;
    m.add_class::<NativeCsClient>()?;
    m.add_class::<NativeCsServer>()?;
    m.add_class::<NativeFheServer>()?;
    m.add_class::<NativeFheClient>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
