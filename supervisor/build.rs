//! Link settings for the `supervisor` binaries.

use std::path::PathBuf;
use std::process::Command;
use std::{env, fs};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Relative relocations packed as bitmaps (DT_RELR, glibc 2.36+): the
    // loader walks a few kilobytes instead of half a megabyte of entries at
    // every start, and the binary stays position-independent. Linkers that
    // predate the flag (binutils < 2.38) warn and ignore it.
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    link_unwinder_statically();
}

/// Links GCC's unwinder into the binaries (as `gcc -static-libgcc` does)
/// instead of loading `libgcc_s.so.1` at every start: one shared library
/// fewer to open, map and relocate, and no `libgcc_s` constructor (it runs
/// CPUID, which traps to the hypervisor on a virtual machine). That is a
/// tenth of a millisecond of every `supervisor` command.
///
/// Rust's standard library asks the linker for `-lgcc_s`; a linker script of
/// that name, found first on the search path, answers with `libgcc_eh.a`,
/// the same unwinder as a static archive. Where the C compiler has no
/// `libgcc_eh.a` (not GCC, not glibc), or the build is a cross build,
/// nothing changes.
fn link_unwinder_statically() {
    let gnu_linux = env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    // Cross builds keep the default: the host's compiler would name the
    // host's archive.
    let native = env::var("TARGET").ok() == env::var("HOST").ok();
    if !gnu_linux || !native {
        return;
    }
    println!("cargo:rerun-if-env-changed=CC");
    let Some(archive) = static_unwinder() else {
        return;
    };
    let dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("unwind");
    fs::create_dir_all(&dir).expect("create the linker-script directory in OUT_DIR");
    let script = format!(
        "/* libgcc_s, linked statically */\nINPUT(\"{}\")\n",
        archive.display()
    );
    fs::write(dir.join("libgcc_s.so"), script).expect("write the linker script to OUT_DIR");
    println!("cargo:rustc-link-arg-bins=-L{}", dir.display());
}

/// The C compiler's `libgcc_eh.a`, when it has one.
fn static_unwinder() -> Option<PathBuf> {
    let cc = env::var_os("CC").unwrap_or_else(|| "cc".into());
    let out = Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    // Without the file, the compiler prints the bare name back.
    (out.status.success() && path.is_absolute() && path.is_file()).then_some(path)
}
