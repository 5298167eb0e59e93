#![no_main]
//! Arbitrary bytes as a client's byte stream, cut into arbitrary pieces and read through an
//! arbitrarily small output window: the HTTP layer never panics, never claims more input or
//! output than it was given, and always either makes progress or waits for something it can
//! name (more input, more output space, or a timeout).
use xgate_core::app::{App, AppConfig};
use xgate_core::http::{HttpConn, HttpLimits};
use xgate_core::time::{Duration, Instant};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, stream)) = data.split_first() else {
        return;
    };
    let app = App::new(&AppConfig::default()).expect("the default config is valid");
    let mut conn = HttpConn::new(HttpLimits::default());
    // Output window 1..=256 bytes, input pieces 1..=64 bytes, both from the control byte.
    let out_size = 1 + usize::from(ctl) % 256;
    let piece = 1 + usize::from(ctl >> 2) % 64;
    let mut out = vec![0u8; out_size];
    let mut pending: Vec<u8> = Vec::new();
    let mut now = Instant::from_secs(1);
    let mut fed = 0usize;
    let mut rounds = 0usize;
    while fed < stream.len() || !pending.is_empty() {
        let next = (fed + piece).min(stream.len());
        pending.extend_from_slice(&stream[fed..next]);
        fed = next;
        // Drain output until the connection stops producing.
        loop {
            rounds += 1;
            assert!(rounds < 10_000_000, "no progress bound reached");
            let p = conn.process(now, &app, &pending, &mut out);
            assert!(p.consumed <= pending.len());
            assert!(p.produced <= out.len());
            pending.drain(..p.consumed);
            if p.produced == 0 && p.consumed == 0 {
                break;
            }
        }
        if conn.wants_close() {
            break;
        }
        if fed == stream.len() {
            // Whatever is left can never complete: end of input.
            conn.peer_closed(now);
            let _ = conn.process(now, &app, &pending, &mut out);
            break;
        }
        now += Duration::from_millis(u64::from(ctl));
        if let Some(t) = conn.poll_timeout() {
            if t <= now {
                conn.handle_timeout(now);
            }
        }
    }
});
