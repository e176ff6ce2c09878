fn main() {
    eprintln!("snapinspect: not built yet");
    std::process::exit(2);
}
