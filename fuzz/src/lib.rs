//! What the fuzz targets in `fuzz_targets/` share: a runtime, the node
//! pieces they drive, and the seed inputs of the committed corpus.
//!
//! Every target reads untrusted bytes the way a node reads them from the
//! network and asserts no panic (plus, where one holds, a property such as
//! a round trip). Running a target with `DYNAMO_FUZZ_SEEDS=DIR` writes its
//! seed inputs into `DIR` and exits (see `scripts/fuzz.sh --seed`); with
//! `DYNAMO_FUZZ_VERBOSE` set, targets say what the node made of each input.

pub mod http_api;
pub mod seeds;
pub mod stream;

use std::sync::OnceLock;

use tokio::runtime::Runtime;

/// One current-thread runtime per process, with time and I/O, shared by
/// every input (building one per input would dominate the run time).
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("building the fuzzing runtime")
    })
}

/// One node-to-node frame as the transport writes it: `u32` big-endian
/// length of what follows, `u64` big-endian request id, then the
/// postcard-encoded message (`transport/frame.rs`).
pub fn frame<T: serde::Serialize>(id: u64, message: &T) -> Vec<u8> {
    let payload = postcard::to_stdvec(message).expect("messages serialize");
    let len = u32::try_from(8 + payload.len()).expect("seed frames are small");
    let mut out = Vec::with_capacity(12 + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Whether `DYNAMO_FUZZ_VERBOSE` is set: targets then print what the node
/// made of each input (to see what a corpus entry or a crash input does).
pub fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("DYNAMO_FUZZ_VERBOSE").is_some())
}

/// With `DYNAMO_FUZZ_SEEDS=DIR` set, writes `seeds` into `DIR` (one file
/// each, named by index) and exits; otherwise does nothing. Called from a
/// target's `init`.
pub fn write_seeds_if_asked(seeds: impl FnOnce() -> Vec<Vec<u8>>) {
    let Some(dir) = std::env::var_os("DYNAMO_FUZZ_SEEDS") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("creating the seed directory");
    for (i, seed) in seeds().into_iter().enumerate() {
        let path = dir.join(format!("seed-{i:02}"));
        std::fs::write(&path, seed).expect("writing a seed");
    }
    eprintln!("seeds written to {}", dir.display());
    std::process::exit(0);
}
