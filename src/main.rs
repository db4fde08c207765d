fn main() {
    std::process::exit(wsusfix::cli::main());
}
