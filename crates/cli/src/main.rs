fn main() {
    println!("blindfold");
}
