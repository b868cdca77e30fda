//! The `latchkey` binary: parse the command line and hand over to [`latchkey::cli`].

use std::process::ExitCode;

/// jemalloc, configured in `.cargo/config.toml`: it gives freed memory back
/// to the system within a second, and served the bearer route faster than
/// glibc's allocator, which also kept ~40 MiB after a login flood
/// (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    latchkey::cli::run()
}
