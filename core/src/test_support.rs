//! For tests that need what a machine may lack (the shared data beside the repo, a wgpu
//! adapter): on a user's machine they skip with a line saying why; in CI (`CI=true`) a missing
//! prerequisite fails the run instead of passing silently.

/// Whether this is a CI run (`CI` set to `true` or `1`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Skips the calling test for want of `what`; panics instead when [`in_ci`].
pub fn skip(what: &str) {
    assert!(
        !in_ci(),
        "CI=true, so this test must run, but {what}; install or restore it"
    );
    eprintln!("skipped: {what}");
}
