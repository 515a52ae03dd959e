//! BFV contexts per CRT prime, keys, and the randomness adapter.

use crate::params::FheParams;
use crate::FheError;
use fhe::bfv::{
    BfvParameters, BfvParametersBuilder, EvaluationKey, EvaluationKeyBuilder, RelinearizationKey,
    SecretKey,
};
use fhe_traits::{DeserializeParametrized, Serialize as FheSerialize};
use rand_core::{CryptoRng, RngCore};
use std::sync::Arc;

// `Rng09` (core) lends our rand_core 0.6 generators (`Prg`, `OsRng`) to the
// `fhe` crate's rand 0.9 traits: secret keys, errors and key-switching keys'
// randomness come from the generator the caller passes. The `fhe` crate draws
// the seed of each fresh ciphertext's (and key's) uniform half from its own
// thread generator (`rand::rng()`, a CSPRNG seeded by the OS), so encryptions
// are not reproducible from a seed: tests compare decryptions, never bytes.
pub(crate) use blindfold_core::rng09::Rng09;

/// One BFV parameter set per plaintext prime (same degree and moduli).
#[derive(Clone, Debug)]
pub struct Contexts {
    pub params: FheParams,
    pub bfv: Vec<Arc<BfvParameters>>,
}

impl Contexts {
    /// Build the BFV contexts; the parameters are validated first, since they
    /// may come from a file.
    pub fn new(params: &FheParams) -> Result<Contexts, FheError> {
        params.validate()?;
        let bfv = params
            .plaintext
            .iter()
            .map(|&t| {
                BfvParametersBuilder::new()
                    .set_degree(params.degree)
                    .set_plaintext_modulus(t)
                    .set_moduli(&params.moduli)
                    .build_arc()
                    .map_err(|e| FheError::Params(format!("BFV parameters: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Contexts {
            params: params.clone(),
            bfv,
        })
    }
    pub fn primes(&self) -> usize {
        self.bfv.len()
    }

    /// Refuse ciphertexts for another number of CRT primes.
    pub fn expect_primes(&self, got: usize) -> Result<(), FheError> {
        if got != self.primes() {
            return Err(FheError::Format(format!(
                "{got} prime(s) of ciphertexts, the keys have {}",
                self.primes()
            )));
        }
        Ok(())
    }
}

/// The client's secret keys (one per prime). Never leaves the client.
pub struct SecretKeys {
    pub keys: Vec<SecretKey>,
}

/// What the server needs to evaluate: relinearization keys and, for the
/// latency layout, the rotation keys of the program's rotation amounts.
pub struct EvalKeys {
    pub relin: Vec<RelinearizationKey>,
    pub rotations: Vec<usize>,
    pub galois: Vec<Option<EvaluationKey>>,
}

/// Generate keys for `ctx`; `rotations` are the column rotations the latency
/// plan uses (empty for the batch layout).
pub fn keygen<R: RngCore + CryptoRng>(
    ctx: &Contexts,
    rotations: &[usize],
    rng: &mut R,
) -> Result<(SecretKeys, EvalKeys), FheError> {
    let mut r = Rng09(rng);
    let mut keys = vec![];
    let mut relin = vec![];
    let mut galois = vec![];
    for par in &ctx.bfv {
        let sk = SecretKey::random(par, &mut r);
        relin.push(RelinearizationKey::new(&sk, &mut r).map_err(he)?);
        if rotations.is_empty() {
            galois.push(None);
        } else {
            let mut b = EvaluationKeyBuilder::new(&sk).map_err(he)?;
            for &k in rotations {
                b.enable_column_rotation(k).map_err(he)?;
            }
            galois.push(Some(b.build(&mut r).map_err(he)?));
        }
        keys.push(sk);
    }
    Ok((
        SecretKeys { keys },
        EvalKeys {
            relin,
            rotations: rotations.to_vec(),
            galois,
        },
    ))
}

pub(crate) fn he(e: fhe::Error) -> FheError {
    FheError::Backend(e.to_string())
}

impl EvalKeys {
    /// Bytes of the serialized keys.
    pub fn to_blobs(&self) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        (
            self.relin.iter().map(|k| k.to_bytes()).collect(),
            self.galois
                .iter()
                .map(|g| g.as_ref().map(|g| g.to_bytes()).unwrap_or_default())
                .collect(),
        )
    }
    pub fn from_blobs(
        ctx: &Contexts,
        relin: &[Vec<u8>],
        galois: &[Vec<u8>],
        rotations: &[usize],
    ) -> Result<EvalKeys, FheError> {
        if relin.len() != ctx.primes() || galois.len() != ctx.primes() {
            return Err(FheError::Format(format!(
                "evaluation keys for {} prime(s), the parameters have {}",
                relin.len(),
                ctx.primes()
            )));
        }
        let relin = relin
            .iter()
            .zip(&ctx.bfv)
            .map(|(b, par)| {
                RelinearizationKey::from_bytes(b, par)
                    .map_err(|e| FheError::Format(format!("relinearization key: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let galois = galois
            .iter()
            .zip(&ctx.bfv)
            .map(|(b, par)| {
                if rotations.is_empty() {
                    return Ok(None);
                }
                let k = EvaluationKey::from_bytes(b, par)
                    .map_err(|e| FheError::Format(format!("rotation keys: {e}")))?;
                for &r in rotations {
                    if !k.supports_column_rotation_by(r) {
                        return Err(FheError::Format(format!(
                            "rotation keys lack the rotation by {r}"
                        )));
                    }
                }
                Ok(Some(k))
            })
            .collect::<Result<_, _>>()?;
        Ok(EvalKeys {
            relin,
            rotations: rotations.to_vec(),
            galois,
        })
    }
}
