//! Varints written the cheap way, for the two hand-written encoders of the
//! per-line path: the push protobuf (`sink::proto`) and the spool's chunk
//! payload (`spool::chunk`).
//!
//! Owns: [`put_varint`] (a LEB128 varint into a fixed array) and
//! [`append_head`] (the first `n` bytes of such an array appended to a
//! `Vec` in one copy). An entry's keys and lengths are put together on
//! the stack and appended at once: pushed into the `Vec` a byte at a time,
//! each byte paid a capacity check (~40 instructions a varint with prost's
//! `encode_varint`), and a copy of a variable length is a `memcpy` call,
//! as costly as the few bytes themselves.
//!
//! Must never: write past the array (it panics on a caller's too-small
//! array, a bug, never on data: callers size it for the largest varints).

/// Writes `v` as a varint into `out` from `at`; returns the index after
/// it. `out` must have room for 10 bytes from `at` (a `u64`'s most).
#[inline(always)]
pub fn put_varint(out: &mut [u8], mut at: usize, mut v: u64) -> usize {
    while v >= 0x80 {
        out[at] = v as u8 | 0x80;
        v >>= 7;
        at += 1;
    }
    out[at] = v as u8;
    at + 1
}

/// Appends `head[..n]`. The whole array is copied and the rest cut off: a
/// copy of a constant size is a few moves.
#[inline(always)]
pub fn append_head<const N: usize>(buf: &mut Vec<u8>, head: &[u8; N], n: usize) {
    let len = buf.len();
    buf.extend_from_slice(head);
    buf.truncate(len + n);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The varint is prost's, byte for byte, wherever it starts.
        #[test]
        fn a_varint_is_leb128_as_prost_writes_it(v in any::<u64>(), at in 0usize..6) {
            let mut head = [0xaau8; 16];
            let end = put_varint(&mut head, at, v);
            let mut want = Vec::new();
            prost::encoding::encode_varint(v, &mut want);
            prop_assert_eq!(&head[at..end], &want[..]);
            let mut buf = b"x".to_vec();
            append_head(&mut buf, &head, end);
            prop_assert_eq!(buf.len(), 1 + end);
            prop_assert_eq!(&buf[1 + at..], &want[..]);
        }
    }
}
