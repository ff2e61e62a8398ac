//! The wire protocol between the runner and the puppet. It must match the
//! constants and structures of `puppet/puppet.rs` (see its module docs).

/// The fd on which the puppet reads requests and writes responses.
pub(crate) const CHAN_FD: i32 = 1000;

/// The first response a puppet sends: `ret` of its ready message.
pub(crate) const READY_MAGIC: i64 = 0x5650_5550_5045_5431;

pub(crate) const OP_SYSCALL: u64 = 1;
pub(crate) const OP_LOAD: u64 = 2;
pub(crate) const OP_STORE: u64 = 3;
pub(crate) const OP_EXEC: u64 = 4;
pub(crate) const OP_MINCORE: u64 = 5;
pub(crate) const OP_FORK: u64 = 6;
pub(crate) const OP_EXIT: u64 = 7;
pub(crate) const OP_PWRITE: u64 = 8;

/// The most request data (`open` paths, `rlimit` structures) a request
/// carries.
pub(crate) const DATA_MAX: usize = 4096;

/// A request, 80 bytes on the wire (native endianness), then `data_len`
/// bytes of data.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Request {
    pub op: u64,
    /// `OP_SYSCALL`: `a[0]` is the number, `a[1..7]` the arguments.
    pub a: [u64; 7],
    /// `OP_SYSCALL`: bit `i` set means argument `i` (0-based) is an offset
    /// into the data, passed to the kernel as a pointer to the puppet's copy.
    pub ptr_mask: u64,
    pub data_len: u64,
}

pub(crate) const REQUEST_SIZE: usize = 80;

impl Request {
    pub fn encode(&self) -> [u8; REQUEST_SIZE] {
        let mut out = [0u8; REQUEST_SIZE];
        let words = [
            self.op,
            self.a[0],
            self.a[1],
            self.a[2],
            self.a[3],
            self.a[4],
            self.a[5],
            self.a[6],
            self.ptr_mask,
            self.data_len,
        ];
        for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
        out
    }
}

/// A response header, 56 bytes on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Response {
    pub ret: i64,
    /// Nonzero when an access faulted: the delivered signal.
    pub signo: i64,
    pub code: i64,
    pub addr: u64,
    /// `OP_LOAD`: the hash; `OP_EXEC`: the signal that ended the step.
    pub hash: u64,
    /// `OP_EXEC`: the instruction pointer when the step ended.
    pub aux: u64,
    pub payload_len: u64,
}

pub(crate) const RESPONSE_SIZE: usize = 56;

impl Response {
    pub fn decode(bytes: &[u8; RESPONSE_SIZE]) -> Response {
        let mut w = [0u64; 7];
        for (i, chunk) in bytes.chunks_exact(8).enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            w[i] = u64::from_ne_bytes(b);
        }
        Response {
            ret: w[0] as i64,
            signo: w[1] as i64,
            code: w[2] as i64,
            addr: w[3],
            hash: w[4],
            aux: w[5],
            payload_len: w[6],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout() {
        let r = Request {
            op: 1,
            a: [2, 3, 4, 5, 6, 7, 8],
            ptr_mask: 9,
            data_len: 10,
        };
        let b = r.encode();
        assert_eq!(&b[0..8], &1u64.to_ne_bytes());
        assert_eq!(&b[64..72], &9u64.to_ne_bytes());
        assert_eq!(&b[72..80], &10u64.to_ne_bytes());
    }

    #[test]
    fn response_layout() {
        let mut b = [0u8; RESPONSE_SIZE];
        b[0..8].copy_from_slice(&(-12i64).to_ne_bytes());
        b[48..56].copy_from_slice(&5u64.to_ne_bytes());
        let r = Response::decode(&b);
        assert_eq!(r.ret, -12);
        assert_eq!(r.payload_len, 5);
    }
}
