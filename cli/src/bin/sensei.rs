//! `sensei`: run a whole migration on one machine, and check certificates
//! (the command itself is [`sensei_cli::app`]).

fn main() {
    sensei_cli::app::main()
}
