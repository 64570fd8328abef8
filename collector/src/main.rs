use std::process::ExitCode;

fn main() -> ExitCode {
    exhibit_collector::cli::main()
}
