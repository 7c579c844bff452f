fn main() {
    std::process::exit(btestd::cli::run(argh::from_env()));
}
