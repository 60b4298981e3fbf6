//! Event ids: the hex xxh3-128 hash of a sample's identity fields and time, the same for a
//! redelivered document, so that it is counted once downstream.

use xxhash_rust::xxh3::Xxh3Default;

use crate::standard::EpochMillis;

/// `value` in decimal (as `value.to_string()`), written into `buf`.
pub(super) fn decimal(value: i64, buf: &mut [u8; 20]) -> &str {
    let mut rest = value.unsigned_abs();
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    std::str::from_utf8(&buf[at..]).expect("ASCII digits")
}

/// Bytes of an event id's hash input kept on the stack; longer inputs are hashed as a stream.
pub(super) const EVENT_ID_INLINE: usize = 512;

/// The event id: 32 lower-case hex digits of the 128-bit xxh3 hash of the identity fields
/// (each length-prefixed, an absent one distinct from an empty one) and the time.
///
/// The input is gathered on the stack and hashed in one call; an input longer than
/// [`EVENT_ID_INLINE`] bytes continues in xxh3's streaming hasher. Both give the same digest
/// (xxh3's one-shot and streaming forms agree), so ids do not depend on the length.
pub(super) fn event_id(fields: &[Option<&str>], end: EpochMillis) -> String {
    let mut input = HashInput {
        inline: [0; EVENT_ID_INLINE],
        len: 0,
        stream: None,
    };
    for field in fields {
        match field {
            Some(s) => {
                input.update(&(s.len() as u64).to_le_bytes());
                input.update(s.as_bytes());
            }
            None => input.update(&u64::MAX.to_le_bytes()),
        }
    }
    input.update(&end.to_le_bytes());
    let hash = match &input.stream {
        Some(stream) => stream.digest128(),
        None => xxhash_rust::xxh3::xxh3_128(&input.inline[..input.len]),
    };
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0; 32];
    for (pair, byte) in digits.chunks_exact_mut(2).zip(hash.to_be_bytes()) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
    std::str::from_utf8(&digits).expect("hex digits").to_owned()
}

/// An event id's hash input: on the stack, or in a streaming hasher once it is too long.
struct HashInput {
    inline: [u8; EVENT_ID_INLINE],
    len: usize,
    stream: Option<Box<Xxh3Default>>,
}

impl HashInput {
    fn update(&mut self, bytes: &[u8]) {
        if let Some(stream) = &mut self.stream {
            stream.update(bytes);
        } else if let Some(room) = self.inline.get_mut(self.len..self.len + bytes.len()) {
            room.copy_from_slice(bytes);
            self.len += bytes.len();
        } else {
            let mut stream = Box::new(Xxh3Default::new());
            stream.update(&self.inline[..self.len]);
            stream.update(bytes);
            self.stream = Some(stream);
        }
    }
}
