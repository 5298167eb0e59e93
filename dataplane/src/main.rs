fn main() -> anyhow::Result<()> {
    println!("xgate: gateway not yet wired; see README");
    Ok(())
}
