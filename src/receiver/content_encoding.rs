//! `Content-Encoding`: a gzip or deflate body is inflated as soon as it is read, with the body
//! limit applied to the inflated size, so a small bomb is refused with 413 once the limit is
//! passed, never inflated whole. Any other coding is refused with 415: a body we cannot read
//! would be answered 200 and kept as a failure the sender never retries.

use std::io::Read;

use axum::http::{HeaderMap, header};
use bytes::Bytes;
use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};

use super::ReceiveError;

/// `body` as the sender wrote it before encoding it, at most `max_bytes` of it.
pub(super) fn decode(
    headers: &HeaderMap,
    body: Bytes,
    max_bytes: usize,
) -> Result<Bytes, ReceiveError> {
    let codings: Vec<String> = headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .flat_map(|value| value.as_bytes().split(|byte| *byte == b','))
        .map(|coding| String::from_utf8_lossy(coding).trim().to_ascii_lowercase())
        .filter(|coding| !coding.is_empty() && coding != "identity")
        .collect();
    let coding = match codings.as_slice() {
        [] => return Ok(body),
        [coding] => coding,
        // No webhook sender stacks codings; refused rather than a decoder chain nobody uses.
        _ => return Err(ReceiveError::UnsupportedEncoding(codings.join(", "))),
    };
    if !matches!(coding.as_str(), "gzip" | "x-gzip" | "deflate") {
        return Err(ReceiveError::UnsupportedEncoding(coding.clone()));
    }
    if body.is_empty() {
        // A GET or an empty journey call from a client that labels every request.
        return Ok(body);
    }
    let decoded = match coding.as_str() {
        // The standard says zlib-wrapped; some clients send raw deflate. A zlib stream starts
        // with a checked two-byte header that a raw one (its first block's header, then zero
        // padding) does not form.
        "deflate" if is_zlib_header(&body) => inflate(ZlibDecoder::new(&body[..]), max_bytes),
        "deflate" => inflate(DeflateDecoder::new(&body[..]), max_bytes),
        _ => inflate(MultiGzDecoder::new(&body[..]), max_bytes),
    };
    match decoded {
        Ok(Some(decoded)) => Ok(Bytes::from(decoded)),
        Ok(None) => Err(ReceiveError::TooLarge { limit: max_bytes }),
        Err(_) => Err(ReceiveError::BadRequest(format!(
            "the body could not be decompressed as `{coding}`"
        ))),
    }
}

/// The inflated bytes, or `None` once they pass `max_bytes` (reading stops there).
fn inflate(decoder: impl Read, max_bytes: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut decoded = Vec::new();
    decoder.take(max_bytes as u64 + 1).read_to_end(&mut decoded)?;
    Ok((decoded.len() <= max_bytes).then_some(decoded))
}

/// RFC 1950: compression method 8 (deflate) and a header that is a multiple of 31.
fn is_zlib_header(body: &[u8]) -> bool {
    match body {
        [cmf, flg, ..] => cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use flate2::Compression;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use std::io::Write;

    const PLAIN: &[u8] = br#"{"eventName":"emailOpen"}"#;

    fn encoded(coding: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
        headers
    }

    fn gzip(plain: &[u8]) -> Bytes {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(plain).unwrap();
        Bytes::from(encoder.finish().unwrap())
    }

    #[test]
    fn every_accepted_coding_gives_the_plain_body() {
        let mut zlib = ZlibEncoder::new(Vec::new(), Compression::fast());
        zlib.write_all(PLAIN).unwrap();
        let zlib = Bytes::from(zlib.finish().unwrap());
        let mut raw = DeflateEncoder::new(Vec::new(), Compression::fast());
        raw.write_all(PLAIN).unwrap();
        let raw = Bytes::from(raw.finish().unwrap());
        assert!(is_zlib_header(&zlib) && !is_zlib_header(&raw));
        let plain = Bytes::from_static(PLAIN);
        for (coding, body) in [
            ("gzip", gzip(PLAIN)),
            ("X-Gzip", gzip(PLAIN)),
            ("identity, deflate", zlib),
            ("deflate", raw),
            ("Identity", plain.clone()),
        ] {
            assert_eq!(decode(&encoded(coding), body, 100).unwrap(), plain, "{coding}");
        }
        assert_eq!(decode(&HeaderMap::new(), plain.clone(), 100).unwrap(), plain);
    }

    #[test]
    fn bombs_unknown_stacked_and_corrupt_bodies_are_refused() {
        let bomb = gzip(&[0; 1_000_000]);
        let refused = |coding, body: &Bytes| decode(&encoded(coding), body.clone(), 1000);
        assert!(matches!(refused("gzip", &bomb), Err(ReceiveError::TooLarge { limit: 1000 })));
        for coding in ["gzip, gzip", "br", "zstd", "compress"] {
            let refusal = refused(coding, &bomb);
            assert!(matches!(refusal, Err(ReceiveError::UnsupportedEncoding(_))), "{coding}");
        }
        let corrupt = Bytes::from_static(b"\x1f\x8b\x08\x00garbage");
        assert!(matches!(refused("gzip", &corrupt), Err(ReceiveError::BadRequest(_))));
    }
}
