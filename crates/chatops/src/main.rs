//! The stock `chatops` binary: the built-in commands and the whole command line. A bot of
//! your own is the same two lines with its commands registered (see `chatops::run`).

// mimalloc instead of glibc's malloc: per-thread free lists, no arena consolidation on the
// hot path; measured in the README's performance section (issue 13).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    chatops::run(chatops::App::default())
}
