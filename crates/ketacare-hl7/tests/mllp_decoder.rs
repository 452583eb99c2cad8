//! The MLLP frame decoder on byte streams cut in every way.

use ketacare_hl7::mllp::{frame, MllpDecoder, MllpFrame, END_BLOCK, START_BLOCK};

fn message(text: &str) -> MllpFrame {
    MllpFrame::Message { text: text.to_owned(), invalid_utf8: false }
}

fn drain(decoder: &mut MllpDecoder) -> Vec<MllpFrame> {
    std::iter::from_fn(|| decoder.next_frame()).collect()
}

#[test]
fn frame_wraps_in_start_and_end_blocks() {
    assert_eq!(frame("MSH|x"), [&[0x0B][..], b"MSH|x", &[0x1C, 0x0D]].concat());
    assert_eq!(START_BLOCK, 0x0B);
    assert_eq!(END_BLOCK, [0x1C, 0x0D]);
}

#[test]
fn frame_split_byte_by_byte_is_reassembled() {
    let text = "MSH|^~\\&|A|||||20240301||ORU^R01|1|P|2.6\rOBX|1|NM|x||1\r";
    let bytes = frame(text);
    let mut decoder = MllpDecoder::new(1024);
    let mut out = Vec::new();
    for (i, byte) in bytes.iter().enumerate() {
        decoder.feed(std::slice::from_ref(byte));
        let got = drain(&mut decoder);
        if i + 1 < bytes.len() - 1 {
            assert!(got.is_empty(), "no frame before the end block (byte {i})");
            assert!(decoder.is_mid_frame());
        }
        out.extend(got);
    }
    assert_eq!(out, vec![message(text)]);
    assert!(!decoder.is_mid_frame());
    assert_eq!(decoder.take_junk_bytes(), 0, "the CR of the end block is not junk");
}

#[test]
fn several_frames_in_one_read_are_all_delivered() {
    let mut decoder = MllpDecoder::new(1024);
    decoder.feed(&[frame("first"), frame("second"), frame("third")].concat());
    assert_eq!(drain(&mut decoder), vec![message("first"), message("second"), message("third")]);
    assert_eq!(decoder.take_junk_bytes(), 0);
}

#[test]
fn junk_before_a_start_block_is_discarded_and_counted() {
    let mut decoder = MllpDecoder::new(1024);
    decoder.feed(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(drain(&mut decoder), vec![]);
    decoder.feed(&[b"xyz".to_vec(), frame("good")].concat());
    assert_eq!(drain(&mut decoder), vec![message("good")]);
    assert_eq!(decoder.take_junk_bytes(), 18 + 3);
    assert_eq!(decoder.take_junk_bytes(), 0, "the count resets");
}

#[test]
fn oversize_frame_is_reported_then_the_next_good_frame_is_read() {
    let max = 64;
    let big = format!("MSH|^~\\&|A||||||ORU^R01|BIG1|P|2.6\r{}", "OBX|1|NM|x||1\r".repeat(20));
    assert!(big.len() > max);
    // In one read ...
    let mut decoder = MllpDecoder::new(max);
    decoder.feed(&[frame(&big), frame("good")].concat());
    let items = drain(&mut decoder);
    assert_eq!(items.len(), 2);
    match &items[0] {
        MllpFrame::Oversize { head, size } => {
            assert_eq!(*size, big.len());
            assert!(head.starts_with("MSH|^~\\&|A||||||ORU^R01|BIG1|"), "head keeps the MSH: {head:?}");
        }
        other => panic!("expected Oversize, got {other:?}"),
    }
    assert_eq!(items[1], message("good"));

    // ... and arriving in small reads, dropped as it comes (memory stays bounded).
    let mut decoder = MllpDecoder::new(max);
    let stream = [frame(&big), frame("good")].concat();
    let mut items = Vec::new();
    for chunk in stream.chunks(7) {
        decoder.feed(chunk);
        assert!(decoder.buffered_bytes() <= max + 7, "memory stays bounded");
        items.extend(drain(&mut decoder));
    }
    assert!(matches!(&items[0], MllpFrame::Oversize { size, .. } if *size == big.len()), "{items:?}");
    assert_eq!(items[1], message("good"));
    assert_eq!(items.len(), 2);
}

#[test]
fn frame_of_exactly_the_maximum_is_accepted() {
    let mut decoder = MllpDecoder::new(5);
    decoder.feed(&frame("12345"));
    decoder.feed(&frame("123456"));
    let items = drain(&mut decoder);
    assert_eq!(items[0], message("12345"));
    assert!(matches!(items[1], MllpFrame::Oversize { size: 6, .. }));
}

#[test]
fn restart_inside_a_frame_drops_the_partial_message() {
    let mut decoder = MllpDecoder::new(1024);
    decoder.feed(&[&[START_BLOCK][..], b"MSH|half", &frame("whole")].concat());
    assert_eq!(drain(&mut decoder), vec![message("whole")]);
    assert_eq!(decoder.take_junk_bytes(), 8);
}

#[test]
fn end_block_without_cr_still_ends_the_frame() {
    let mut decoder = MllpDecoder::new(1024);
    decoder.feed(&[START_BLOCK, b'a', 0x1C]);
    assert_eq!(drain(&mut decoder), vec![message("a")]);
    decoder.feed(&[START_BLOCK, b'b', 0x1C, START_BLOCK, b'c', 0x1C, 0x0D]);
    assert_eq!(drain(&mut decoder), vec![message("b"), message("c")]);
    assert_eq!(decoder.take_junk_bytes(), 0);
}

#[test]
fn invalid_utf8_is_decoded_lossily_and_flagged() {
    let mut decoder = MllpDecoder::new(1024);
    decoder.feed(&[START_BLOCK, b'M', 0xE9, b'X', 0x1C, 0x0D]);
    assert_eq!(drain(&mut decoder), vec![MllpFrame::Message { text: "M\u{FFFD}X".to_owned(), invalid_utf8: true }]);
}

#[test]
fn client_leaving_mid_frame_is_visible() {
    let mut decoder = MllpDecoder::new(1024);
    decoder.feed(&[START_BLOCK, b'a', b'b']);
    assert_eq!(drain(&mut decoder), vec![]);
    assert!(decoder.is_mid_frame());
    assert_eq!(decoder.pending_bytes(), 2);
}

proptest::proptest! {
    /// However the stream is cut into reads, the same frames come out in the same order.
    #[test]
    fn any_chunking_gives_the_same_frames(
        texts in proptest::collection::vec("[ -~\r]{0,40}", 1..6),
        cuts in proptest::collection::vec(1usize..16, 1..200),
    ) {
        let stream: Vec<u8> = texts.iter().flat_map(|t| frame(t)).collect();
        let mut decoder = MllpDecoder::new(1024);
        let mut got = Vec::new();
        let mut rest = &stream[..];
        let mut cuts = cuts.iter().cycle();
        while !rest.is_empty() {
            let n = (*cuts.next().unwrap()).min(rest.len());
            decoder.feed(&rest[..n]);
            rest = &rest[n..];
            got.extend(drain(&mut decoder));
        }
        let expected: Vec<MllpFrame> = texts.iter().map(|t| message(t)).collect();
        proptest::prop_assert_eq!(got, expected);
        proptest::prop_assert_eq!(decoder.take_junk_bytes(), 0);
    }

    /// Arbitrary bytes never panic and never grow the buffer past the maximum plus one read.
    #[test]
    fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..64), 0..40)) {
        let mut decoder = MllpDecoder::new(100);
        for chunk in &chunks {
            decoder.feed(chunk);
            while decoder.next_frame().is_some() {}
            proptest::prop_assert!(decoder.buffered_bytes() <= 100 + 64, "{} bytes buffered", decoder.buffered_bytes());
        }
    }
}
