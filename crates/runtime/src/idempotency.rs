//! The request side of idempotency, written once for every service: the fingerprint of a
//! request (its id and a digest of its protobuf bytes), the codec that keeps a protobuf
//! answer for replays (`coldchain_store` keeps bytes and knows no protobuf), and the
//! `request_id` field of the call's log span.

use coldchain_store::{ReplyCodec, RequestFingerprint, fingerprint};
use prost::Message;

/// Keeps an answer as its protobuf bytes: what every service's stores hold today.
#[derive(Debug, Clone, Copy, Default)]
pub struct Protobuf;

impl<T: Message + Default> ReplyCodec<T> for Protobuf {
    fn encode(&self, reply: &T) -> Vec<u8> {
        reply.encode_to_vec()
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, String> {
        T::decode(bytes).map_err(|e| e.to_string())
    }
}

/// The fingerprint of `message`, a request carrying `request_id`: its protobuf bytes.
pub fn fingerprint_of<M: Message>(request_id: &str, message: &M) -> RequestFingerprint {
    fingerprint(request_id, &message.encode_to_vec())
}

/// The fingerprint of `message` tagged with its method, so that one id used for two
/// methods whose requests happen to encode alike still counts as reused.
pub fn tagged_fingerprint<M: Message>(
    method: &str,
    request_id: &str,
    message: &M,
) -> RequestFingerprint {
    let mut bytes = Vec::with_capacity(method.len() + 1 + message.encoded_len());
    bytes.extend_from_slice(method.as_bytes());
    bytes.push(0);
    // Encoding into a Vec only fails for lack of capacity, which a Vec grows.
    message.encode(&mut bytes).unwrap_or_default();
    fingerprint(request_id, &bytes)
}

/// Records the call's `request_id` on its log span (declared empty by the server
/// bootstrap, filled here once the request is decoded).
pub fn record_request_id(request_id: &str) {
    tracing::Span::current().record("request_id", request_id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip_and_garbage_is_an_error() {
        let answer = prost_types::Timestamp {
            seconds: 5,
            nanos: 7,
        };
        let bytes = ReplyCodec::<prost_types::Timestamp>::encode(&Protobuf, &answer);
        assert_eq!(Protobuf.decode(&bytes), Ok(answer));
        assert!(ReplyCodec::<prost_types::Timestamp>::decode(&Protobuf, &[0xff]).is_err());
    }

    #[test]
    fn the_method_tag_tells_requests_apart() {
        let message = prost_types::Timestamp::default();
        assert_ne!(
            tagged_fingerprint("A", "r", &message),
            tagged_fingerprint("B", "r", &message)
        );
        assert_eq!(
            fingerprint_of("r", &message),
            fingerprint("r", &message.encode_to_vec())
        );
    }
}
