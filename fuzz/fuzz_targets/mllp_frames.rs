//! The MLLP frame decoder on arbitrary bytes cut into arbitrary reads: never panics and never
//! buffers more than its maximum frame plus one read.
#![no_main]

use ketacare_hl7::mllp::MllpDecoder;
use libfuzzer_sys::fuzz_target;

const MAX_FRAME: usize = 256;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the read size, the rest is the stream.
    let Some((&cut, stream)) = data.split_first() else { return };
    let read = usize::from(cut % 64) + 1;
    let mut decoder = MllpDecoder::new(MAX_FRAME);
    for chunk in stream.chunks(read) {
        decoder.feed(chunk);
        while decoder.next_frame().is_some() {}
        assert!(decoder.buffered_bytes() <= MAX_FRAME + read, "{} bytes buffered", decoder.buffered_bytes());
    }
    let _ = decoder.take_junk_bytes();
});
