//! The non-interactive flow on files (and on the wire, same bytes):
//!
//! ```text
//!  server: FheModel::new ─ profile ──▶ client: keygen ─▶ secret key (stays)
//!                                              └──────▶ evaluation keys ──▶ server
//!  client: encrypt(inputs) ─ query ciphertexts ──▶ server: evaluate ─ result ──▶ client: decrypt
//! ```
//!
//! Every file starts with `BFFHE`, a kind byte and a version, then a bincode
//! body read with a size limit; keys and ciphertexts are the `fhe` crate's
//! protobuf bytes, decoded against the parameters the header names. Keys carry
//! a random key id; query and result files carry it too, so a ciphertext
//! meeting other keys is refused with a clear error instead of decrypting to
//! noise, and every file carries the program fingerprint.

use crate::keys::{keygen, Contexts, EvalKeys, SecretKeys};
use crate::latency::LatencyEvaluator;
use crate::{batch, decrypt_crt, noise_budget, FheError, FheModel, Layout, Profile, Progress};
use fhe::bfv::{Ciphertext, SecretKey};
use fhe_traits::{DeserializeParametrized, Serialize as FheSerialize};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 5] = b"BFFHE";
const VERSION: u8 = 1;
/// Largest file body read (evaluation keys of big rotation sets are large).
pub const MAX_FILE_BYTES: u64 = 4 << 30;
/// Most queries one latency-layout file may carry.
pub const MAX_LATENCY_GROUPS: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Profile = 1,
    SecretKey = 2,
    EvalKey = 3,
    Query = 4,
    Result = 5,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Profile => "FHE profile",
            Kind::SecretKey => "FHE secret key",
            Kind::EvalKey => "FHE evaluation key",
            Kind::Query => "FHE query ciphertexts",
            Kind::Result => "FHE result ciphertexts",
        }
    }
}

fn write<T: Serialize>(kind: Kind, body: &T) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.push(kind as u8);
    out.push(VERSION);
    out.extend(bincode::serialize(body).expect("serializes"));
    out
}

fn read<T: for<'de> Deserialize<'de>>(kind: Kind, bytes: &[u8]) -> Result<T, FheError> {
    use bincode::Options;
    if bytes.len() < 7 || &bytes[..5] != MAGIC {
        return Err(FheError::Format(format!(
            "not a {} file (bad magic)",
            kind.name()
        )));
    }
    if bytes[5] != kind as u8 {
        return Err(FheError::Format(format!(
            "expected a {} file, found kind {}",
            kind.name(),
            bytes[5]
        )));
    }
    if bytes[6] != VERSION {
        return Err(FheError::Format(format!(
            "{} file version {} (this build reads {VERSION})",
            kind.name(),
            bytes[6]
        )));
    }
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .allow_trailing_bytes()
        .with_limit(MAX_FILE_BYTES)
        .deserialize(&bytes[7..])
        .map_err(|e| FheError::Format(format!("malformed {} file: {e}", kind.name())))
}

#[derive(Serialize, Deserialize)]
struct SecretBody {
    profile: Profile,
    key_id: [u8; 16],
    keys: Vec<Vec<u8>>,
}

#[derive(Serialize, Deserialize)]
struct EvalBody {
    fingerprint: [u8; 16],
    params: crate::FheParams,
    quant: crate::FheQuant,
    key_id: [u8; 16],
    rotations: Vec<usize>,
    relin: Vec<Vec<u8>>,
    galois: Vec<Vec<u8>>,
}

#[derive(Serialize, Deserialize)]
struct CipherBody {
    fingerprint: [u8; 16],
    key_id: [u8; 16],
    layout: Layout,
    /// Inputs per group (batch: the batch size; latency: 1).
    inputs: usize,
    /// `[group][prime][ciphertext]`
    groups: Vec<Vec<Vec<Vec<u8>>>>,
}

/// The client's side: profile, secret keys, key id.
pub struct ClientKeys {
    pub profile: Profile,
    pub ctx: Contexts,
    pub sk: SecretKeys,
    pub key_id: [u8; 16],
}

/// The server's side: evaluation keys for one client.
pub struct ServerKeys {
    pub ctx: Contexts,
    pub ek: EvalKeys,
    pub key_id: [u8; 16],
    pub fingerprint: [u8; 16],
}

pub fn profile_to_bytes(p: &Profile) -> Vec<u8> {
    write(Kind::Profile, p)
}
pub fn profile_from_bytes(b: &[u8]) -> Result<Profile, FheError> {
    let p: Profile = read(Kind::Profile, b)?;
    p.validate()?;
    Ok(p)
}

/// Generate keys from a profile: `(client keys, secret-key file, evaluation-key file)`.
pub fn generate<R: RngCore + CryptoRng>(
    profile: &Profile,
    rng: &mut R,
) -> Result<(ClientKeys, Vec<u8>, Vec<u8>), FheError> {
    profile.validate()?;
    let ctx = Contexts::new(&profile.params)?;
    let (sk, ek) = keygen(&ctx, &profile.rotations, rng)?;
    let mut key_id = [0u8; 16];
    rng.fill_bytes(&mut key_id);
    let secret = write(
        Kind::SecretKey,
        &SecretBody {
            profile: profile.clone(),
            key_id,
            keys: sk.keys.iter().map(|k| k.to_bytes()).collect(),
        },
    );
    let (relin, galois) = ek.to_blobs();
    let eval = write(
        Kind::EvalKey,
        &EvalBody {
            fingerprint: profile.fingerprint,
            params: profile.params.clone(),
            quant: profile.quant,
            key_id,
            rotations: profile.rotations.clone(),
            relin,
            galois,
        },
    );
    Ok((
        ClientKeys {
            profile: profile.clone(),
            ctx,
            sk,
            key_id,
        },
        secret,
        eval,
    ))
}

impl ClientKeys {
    pub fn from_bytes(b: &[u8]) -> Result<ClientKeys, FheError> {
        let body: SecretBody = read(Kind::SecretKey, b)?;
        body.profile.validate()?;
        let ctx = Contexts::new(&body.profile.params)?;
        if body.keys.len() != ctx.primes() {
            return Err(FheError::Format(
                "secret key file: wrong number of keys".into(),
            ));
        }
        let keys = body
            .keys
            .iter()
            .zip(&ctx.bfv)
            .map(|(k, par)| {
                SecretKey::from_bytes(k, par)
                    .map_err(|e| FheError::Format(format!("secret key: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(ClientKeys {
            profile: body.profile,
            ctx,
            sk: SecretKeys { keys },
            key_id: body.key_id,
        })
    }

    /// Encrypt inputs: the batch layout packs up to `n` inputs into one group,
    /// the latency layout makes one group per input.
    pub fn encrypt<R: RngCore + CryptoRng>(
        &self,
        inputs: &[Vec<f32>],
        rng: &mut R,
    ) -> Result<Vec<u8>, FheError> {
        let enc: Vec<Vec<i64>> = inputs
            .iter()
            .map(|x| self.profile.encode_input(x))
            .collect::<Result<_, _>>()?;
        let layout = self.profile.params.layout;
        let (groups, per) = match layout {
            Layout::Batch => (
                vec![batch::encrypt(
                    &self.ctx,
                    &self.sk,
                    &enc,
                    self.profile.input_len,
                    rng,
                )?],
                enc.len(),
            ),
            Layout::Latency => {
                if enc.is_empty() {
                    return Err(FheError::Batch { got: 0, slots: 1 });
                }
                let packing =
                    self.profile.packing.as_ref().ok_or_else(|| {
                        FheError::Format("the profile has no latency packing".into())
                    })?;
                (
                    enc.iter()
                        .map(|x| crate::latency::encrypt(&self.ctx, &self.sk, packing, x, rng))
                        .collect::<Result<_, _>>()?,
                    1,
                )
            }
        };
        Ok(write(
            Kind::Query,
            &CipherBody {
                fingerprint: self.profile.fingerprint,
                key_id: self.key_id,
                layout,
                inputs: per,
                groups: groups
                    .iter()
                    .map(|g| {
                        g.iter()
                            .map(|p| p.iter().map(|c| c.to_bytes()).collect())
                            .collect()
                    })
                    .collect(),
            },
        ))
    }

    /// Decrypt a result file: per input, the output integers; and the noise
    /// budget left (bits) in the tightest ciphertext.
    pub fn decrypt(&self, result: &[u8]) -> Result<(Vec<Vec<i128>>, i64), FheError> {
        let body: CipherBody = read(Kind::Result, result)?;
        if body.fingerprint != self.profile.fingerprint {
            return Err(FheError::Mismatch("the result is for another model".into()));
        }
        if body.key_id != self.key_id {
            return Err(FheError::Mismatch(
                "the result was computed with other keys than this secret key".into(),
            ));
        }
        let out_len = self.profile.output_len;
        let mut outs = vec![];
        let mut budget = i64::MAX;
        for g in &body.groups {
            let cts = decode_group(&self.ctx, g, body.layout, false)?;
            budget = budget.min(noise_budget(&self.ctx, &self.sk, &cts)?);
            match body.layout {
                Layout::Batch => {
                    if cts.iter().any(|p| p.len() != out_len)
                        || body.inputs > self.ctx.params.degree
                    {
                        return Err(FheError::Format(
                            "result has the wrong number of ciphertexts".into(),
                        ));
                    }
                    // output o of input b: ciphertext o, slot b (each decrypted once)
                    let reads: Vec<(usize, usize, usize)> = (0..out_len)
                        .flat_map(|o| (0..body.inputs).map(move |b| (b * out_len + o, o, b)))
                        .collect();
                    let all =
                        decrypt_crt(&self.ctx, &self.sk, &cts, &reads, out_len * body.inputs)?;
                    outs.extend(all.chunks(out_len).map(|c| c.to_vec()));
                }
                Layout::Latency => {
                    if cts.iter().any(|p| p.len() != 1) {
                        return Err(FheError::Format(
                            "result has the wrong number of ciphertexts".into(),
                        ));
                    }
                    let reads: Vec<(usize, usize, usize)> =
                        (0..out_len).map(|o| (o, 0, o)).collect();
                    outs.push(decrypt_crt(&self.ctx, &self.sk, &cts, &reads, out_len)?);
                }
            }
        }
        if budget <= 0 {
            return Err(FheError::Decrypt(format!(
                "the noise leaves {budget} bits of budget: the result may be wrong, so it is refused"
            )));
        }
        Ok((outs, budget))
    }
}

fn decode_group(
    ctx: &Contexts,
    g: &[Vec<Vec<u8>>],
    _layout: Layout,
    fresh: bool,
) -> Result<Vec<Vec<Ciphertext>>, FheError> {
    if g.len() != ctx.primes() {
        return Err(FheError::Format(format!(
            "{} prime(s) of ciphertexts, the parameters have {}",
            g.len(),
            ctx.primes()
        )));
    }
    g.iter()
        .zip(&ctx.bfv)
        .map(|(cs, par)| {
            cs.iter()
                .map(|b| {
                    let c = decode_ciphertext(b, par)?;
                    if c.len() != 2
                        || (fresh && c[0].ctx().moduli().len() != ctx.params.moduli.len())
                    {
                        return Err(FheError::Format(
                            "a ciphertext has the wrong size or level".into(),
                        ));
                    }
                    Ok(c)
                })
                .collect()
        })
        .collect()
}

/// Decode one ciphertext; the `fhe` crate's decoder is shielded so that a
/// malformed blob is an error, never a crash of the server.
fn decode_ciphertext(
    b: &[u8],
    par: &std::sync::Arc<fhe::bfv::BfvParameters>,
) -> Result<Ciphertext, FheError> {
    let r = std::panic::catch_unwind(|| Ciphertext::from_bytes(b, par));
    let c = match r {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(FheError::Format(format!("malformed ciphertext: {e}"))),
        Err(_) => return Err(FheError::Format("malformed ciphertext".into())),
    };
    // The protobuf names each polynomial's representation and whether it may
    // run in variable time: rebuild through `Ciphertext::new`, which insists on
    // the NTT form (another one makes the arithmetic assert), with
    // constant-time arithmetic (the server's weights meet these polynomials).
    let polys = c
        .iter()
        .map(|p| {
            let mut p = p.clone();
            p.disallow_variable_time_computations();
            p
        })
        .collect();
    Ciphertext::new(polys, par).map_err(|e| FheError::Format(format!("malformed ciphertext: {e}")))
}

impl ServerKeys {
    pub fn from_bytes(b: &[u8]) -> Result<(ServerKeys, crate::FheQuant, Layout), FheError> {
        Self::decode(b, None)
    }

    /// Decode evaluation keys a client uploaded for `server`: the parameters
    /// and fingerprint are compared with the server's before anything is built
    /// from the file.
    pub fn for_server(b: &[u8], server: &Server) -> Result<ServerKeys, FheError> {
        let (k, _, _) = Self::decode(b, Some(server))?;
        server.check_keys(&k)?;
        Ok(k)
    }

    fn decode(
        b: &[u8],
        server: Option<&Server>,
    ) -> Result<(ServerKeys, crate::FheQuant, Layout), FheError> {
        let body: EvalBody = read(Kind::EvalKey, b)?;
        if let Some(s) = server {
            if body.params != s.model.params || body.fingerprint != s.model.program.fingerprint() {
                return Err(FheError::Mismatch(
                    "the evaluation keys were made for another model, quantization or parameter set".into(),
                ));
            }
        }
        let ctx = Contexts::new(&body.params)?;
        let ek = EvalKeys::from_blobs(&ctx, &body.relin, &body.galois, &body.rotations)?;
        let layout = body.params.layout;
        Ok((
            ServerKeys {
                ctx,
                ek,
                key_id: body.key_id,
                fingerprint: body.fingerprint,
            },
            body.quant,
            layout,
        ))
    }
}

/// The server: a model with its evaluator.
pub struct Server {
    pub model: FheModel,
    latency: Option<LatencyEvaluator>,
    ctx: Contexts,
}

impl Server {
    pub fn new(model: FheModel) -> Result<Server, FheError> {
        let ctx = Contexts::new(&model.params)?;
        let latency = match &model.latency {
            Some(plan) => Some(LatencyEvaluator::new(&ctx, plan)?),
            None => None,
        };
        Ok(Server {
            model,
            latency,
            ctx,
        })
    }

    /// Bytes of an evaluation-key file for these parameters, with room: the
    /// relinearization key and every rotation key are `L` key-switching
    /// ciphertexts of two polynomials of `L` moduli, per prime.
    pub fn max_eval_key_bytes(&self) -> u64 {
        let p = &self.model.params;
        let (l, n) = (p.moduli.len() as u64, p.degree as u64);
        let rotations = self.model.profile().rotations.len() as u64;
        let per_key = 2 * l * l * n * 8;
        (p.plaintext.len() as u64 * (1 + rotations) * per_key) * 5 / 4 + (1 << 20)
    }

    /// Bytes of a query file for these parameters, with room: at most
    /// [`MAX_LATENCY_GROUPS`] queries in the latency layout, one batch in the
    /// batch layout.
    pub fn max_query_bytes(&self) -> u64 {
        let p = &self.model.params;
        let (l, n) = (p.moduli.len() as u64, p.degree as u64);
        let per_ct = 2 * l * n * 8;
        let (groups, cts) = match &self.model.latency {
            None => (1, self.model.program.input_len() as u64),
            Some(plan) => (MAX_LATENCY_GROUPS as u64, plan.packing.ciphertexts() as u64),
        };
        ((groups * p.plaintext.len() as u64 * cts * per_ct) * 5 / 4 + (1 << 20)).min(2 << 30)
    }

    /// Check that evaluation keys belong to this model and parameters.
    pub fn check_keys(&self, keys: &ServerKeys) -> Result<(), FheError> {
        if keys.fingerprint != self.model.program.fingerprint() {
            return Err(FheError::Mismatch(
                "the evaluation keys were made for another model or quantization".into(),
            ));
        }
        if keys.ctx.params != self.model.params {
            return Err(FheError::Mismatch(
                "the evaluation keys were made for other parameters or layout".into(),
            ));
        }
        Ok(())
    }

    /// Evaluate a query file with evaluation keys; returns the result file.
    pub fn evaluate(
        &self,
        keys: &ServerKeys,
        query: &[u8],
        progress: &Progress,
    ) -> Result<Vec<u8>, FheError> {
        self.check_keys(keys)?;
        let body: CipherBody = read(Kind::Query, query)?;
        if body.fingerprint != keys.fingerprint {
            return Err(FheError::Mismatch(
                "the ciphertexts were made for another model".into(),
            ));
        }
        if body.key_id != keys.key_id {
            return Err(FheError::Mismatch(
                "the ciphertexts were encrypted under other keys than these evaluation keys".into(),
            ));
        }
        if body.layout != self.model.layout() {
            return Err(FheError::Mismatch(format!(
                "the ciphertexts use the {} layout, the server the {}",
                body.layout.name(),
                self.model.layout().name()
            )));
        }
        if body.groups.len() > MAX_LATENCY_GROUPS
            || (body.layout == Layout::Batch && body.groups.len() != 1)
        {
            return Err(FheError::Format(format!(
                "{} groups of ciphertexts (the batch layout takes one, the latency layout at most {MAX_LATENCY_GROUPS})",
                body.groups.len()
            )));
        }
        if body.layout == Layout::Batch
            && (body.inputs == 0 || body.inputs > self.ctx.params.degree)
        {
            return Err(FheError::Batch {
                got: body.inputs,
                slots: self.ctx.params.degree,
            });
        }
        let mut groups = vec![];
        for g in &body.groups {
            let cts = decode_group(&self.ctx, g, body.layout, true)?;
            // Keys and ciphertexts are the client's: anything the checks above
            // miss and the `fhe` crate asserts on is this client's error, not
            // the server's end.
            let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &self.latency {
                None => batch::evaluate(&self.ctx, &keys.ek, &self.model.program, cts, progress),
                Some(l) => l.evaluate(&self.ctx, &keys.ek, cts, progress),
            }))
            .map_err(|_| {
                FheError::Format("the evaluation keys or ciphertexts are malformed (the BFV backend refused them)".into())
            })??;
            groups.push(
                res.iter()
                    .map(|p| p.iter().map(|c| c.to_bytes()).collect())
                    .collect(),
            );
        }
        Ok(write(
            Kind::Result,
            &CipherBody {
                fingerprint: body.fingerprint,
                key_id: body.key_id,
                layout: body.layout,
                inputs: body.inputs,
                groups,
            },
        ))
    }
}

/// Decode a query (`result = false`) or result file against parameters and
/// every ciphertext in it, without evaluating: what a server checks before
/// work starts (and the fuzz target of these files). Returns the number of
/// ciphertexts.
pub fn decode_ciphertext_file(
    bytes: &[u8],
    ctx: &Contexts,
    result: bool,
) -> Result<usize, FheError> {
    let body: CipherBody = read(if result { Kind::Result } else { Kind::Query }, bytes)?;
    let mut n = 0;
    for g in &body.groups {
        n += decode_group(ctx, g, body.layout, !result)?
            .iter()
            .map(|p| p.len())
            .sum::<usize>();
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{ciphertext_moduli, plaintext_primes, FheParams};

    fn eval_file(params: FheParams) -> Vec<u8> {
        write(
            Kind::EvalKey,
            &EvalBody {
                fingerprint: [0; 16],
                params,
                quant: crate::FheQuant::default(),
                key_id: [0; 16],
                rotations: vec![],
                relin: vec![],
                galois: vec![],
            },
        )
    }

    fn good() -> FheParams {
        FheParams {
            layout: Layout::Batch,
            degree: 8192,
            plaintext: plaintext_primes(40, 8192, 1).unwrap(),
            moduli: ciphertext_moduli(&[50, 50, 50], 8192).unwrap(),
            noise_estimate: 0,
        }
    }

    /// The fuzzing findings of docs/FUZZING.md: parameters in a key file that
    /// made the `fhe` crate panic (t = q, t > q) or took 7.5 GB (200 primes)
    /// are refused before any context is built, quickly.
    #[test]
    fn crafted_parameters_in_key_files_are_refused() {
        let mut cases = vec![];
        let mut p = good();
        p.plaintext = vec![p.moduli[0]];
        cases.push(("t = q", p));
        let mut p = good();
        p.plaintext = plaintext_primes(55, 8192, 1).unwrap();
        cases.push(("t > q", p));
        let mut p = good();
        p.plaintext = vec![p.plaintext[0]; 200];
        cases.push(("200 primes", p));
        let mut p = good();
        p.moduli = ciphertext_moduli(&[54; 12], 8192).unwrap();
        cases.push(("log q above the bound", p));
        for (what, p) in cases {
            let t = std::time::Instant::now();
            let e = ServerKeys::from_bytes(&eval_file(p));
            assert!(e.is_err(), "{what}");
            assert!(t.elapsed().as_secs() < 2, "{what} took {:?}", t.elapsed());
        }
        // the untouched parameters get past the check (and fail later, on the
        // empty key list, with a format error)
        let e = ServerKeys::from_bytes(&eval_file(good())).err().unwrap();
        assert!(e.to_string().contains("evaluation keys for 0 prime"), "{e}");
    }
}
