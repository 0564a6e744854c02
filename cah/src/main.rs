fn main() { println!("cah: not yet"); }
