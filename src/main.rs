//! The `latchkey` binary: parse the command line and hand over to [`latchkey::cli`].

use std::process::ExitCode;

/// jemalloc, configured in `.cargo/config.toml`: huge pages (argon2's random
/// walk over ~19 MiB is TLB-bound) and freed memory returned within a second.
/// glibc's allocator kept argon2's working memory after each hash, and the
/// resident size grew by hundreds of MiB under login load (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    latchkey::cli::run()
}
