// `sqlx::migrate!` embeds the migrations when this crate compiles; a migration added
// without a change to the Rust source must still rebuild it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
