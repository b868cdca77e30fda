//! The `latchkey` binary: parse the command line and hand over to [`latchkey::cli`].

use std::process::ExitCode;

/// jemalloc, configured in `.cargo/config.toml` to return freed memory within
/// a second: glibc's allocator keeps argon2's ~19 MiB working memory after
/// each hash, so the resident size grew by hundreds of MiB under login load
/// (see docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    latchkey::cli::run()
}
