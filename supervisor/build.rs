//! Link settings for the `supervisor` binary.

fn main() {
    // Relative relocations packed as bitmaps (DT_RELR, glibc 2.36+): the
    // loader walks a few kilobytes instead of half a megabyte of entries at
    // every start, and the binary stays position-independent. Linkers that
    // predate the flag (binutils < 2.38) warn and ignore it.
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
}
