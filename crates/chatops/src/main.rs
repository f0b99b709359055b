//! The stock `chatops` binary: the built-in commands and the whole command line. A bot of
//! your own is the same two lines with its commands registered (see `chatops::run`).

fn main() -> std::process::ExitCode {
    chatops::run(chatops::App::default())
}
