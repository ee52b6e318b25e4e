//! Encryption of rich-notification content (Graph's `encryptedContent`).
//!
//! A subscription that asks for resource data sends an `encryptionCertificate`
//! (base64 DER X.509, RSA). Each notification item is then encrypted the way
//! Graph does it, so that clients' existing decryption code works unchanged:
//! a fresh 32-byte key K per item; AES-256-CBC (PKCS#7, IV = K[0..16]) over
//! the content; HMAC-SHA256 keyed with K over the ciphertext; K itself
//! wrapped with RSA-OAEP (SHA-1, MGF1-SHA-1) under the certificate's key.
//!
//! Pure apart from reading the OS random number generator.

use aes::Aes256;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Oaep, RsaPublicKey};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use x509_parser::error::X509Error;
use x509_parser::nom;
use x509_parser::public_key::PublicKey;

/// Smallest RSA modulus accepted in an `encryptionCertificate`, in bits.
const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted in an `encryptionCertificate`, in bits.
const MAX_RSA_BITS: usize = 4096;

const PEM_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const PEM_END: &str = "-----END CERTIFICATE-----";

/// Why an `encryptionCertificate` was refused. The messages are sentences
/// meant for the client that sent the subscription.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// The value is not standard base64 (nor a PEM certificate block).
    #[error("encryptionCertificate is not valid base64")]
    NotBase64,
    /// The bytes are not one DER-encoded X.509 certificate (what is wrong).
    #[error("encryptionCertificate is not a DER-encoded X.509 certificate: {0}")]
    NotX509(String),
    /// The certificate's public key is not RSA (EC, DSA, …).
    #[error("encryptionCertificate must hold an RSA public key")]
    NotRsa,
    /// The RSA key is outside 2048 to 4096 bits.
    #[error("encryptionCertificate has a {bits}-bit RSA key; 2048 to 4096 bits are required")]
    KeySize {
        /// The modulus length found, in bits.
        bits: usize,
    },
}

/// Failures of encryption and token signing. None is caused by a client's
/// input once its certificate parsed, so callers treat them as server errors
/// (log the text, answer generically).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// RSA-OAEP wrapping of the content key failed.
    #[error("could not wrap the content key with the certificate's RSA key: {0}")]
    KeyWrap(String),
    /// The validation-token signing key is not a PKCS#8 PEM P-256 private key.
    #[error("the validation-token signing key is not a PKCS#8 PEM P-256 private key: {0}")]
    SigningKey(String),
    /// Signing a validation token failed.
    #[error("could not sign a validation token: {0}")]
    Signing(String),
}

/// A subscription's `encryptionCertificate`: an X.509 certificate with an
/// RSA key of 2048 to 4096 bits, kept with its SHA-1 thumbprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionCertificate {
    der: Vec<u8>,
    key: RsaPublicKey,
    thumbprint: String,
}

impl EncryptionCertificate {
    /// Parses base64 (standard alphabet; tolerate surrounding whitespace and
    /// line breaks; also accept a PEM "-----BEGIN CERTIFICATE-----" block)
    /// DER X.509 with an RSA key of 2048..=4096 bits.
    pub fn parse(base64_der: &str) -> Result<Self, CertificateError> {
        let der = decode_base64_or_pem(base64_der)?;
        if der.is_empty() {
            return Err(CertificateError::NotX509("the value is empty".into()));
        }
        let (rest, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| CertificateError::NotX509(describe(e)))?;
        if !rest.is_empty() {
            return Err(CertificateError::NotX509(format!(
                "{} unexpected bytes follow the certificate",
                rest.len()
            )));
        }
        let spki = cert.public_key();
        let rsa = match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => rsa,
            Ok(_) => return Err(CertificateError::NotRsa),
            Err(e) => return Err(CertificateError::NotX509(e.to_string())),
        };
        // Measured before building the key: `RsaPublicKey` refuses moduli
        // over 4096 bits with an error that would hide the size.
        let bits = modulus_bits(rsa.modulus);
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return Err(CertificateError::KeySize { bits });
        }
        let key = RsaPublicKey::from_public_key_der(spki.raw).map_err(|e| {
            CertificateError::NotX509(format!("its RSA public key is malformed ({e})"))
        })?;
        let thumbprint = Sha1::digest(&der)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        Ok(Self {
            der,
            key,
            thumbprint,
        })
    }

    /// Uppercase hex SHA-1 of the DER (40 characters, no separators), the
    /// form of Graph's and Windows' certificate thumbprints.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The certificate's DER bytes, as received.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

/// Decodes standard base64 with all ASCII whitespace removed; a PEM
/// certificate block is first reduced to its base64 body.
fn decode_base64_or_pem(text: &str) -> Result<Vec<u8>, CertificateError> {
    let body = match text.find(PEM_BEGIN) {
        Some(start) => {
            let after = &text[start + PEM_BEGIN.len()..];
            let end = after.find(PEM_END).ok_or(CertificateError::NotBase64)?;
            &after[..end]
        }
        None => text,
    };
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD
        .decode(compact)
        .map_err(|_| CertificateError::NotBase64)
}

/// The parser's complaint in a client's words; its internal combinator
/// names (`NomError(Eof)`) would mean nothing to a subscriber.
fn describe(err: nom::Err<X509Error>) -> String {
    match err {
        nom::Err::Incomplete(_) => "the data ends before the certificate does".into(),
        nom::Err::Error(e) | nom::Err::Failure(e) => match e {
            X509Error::Generic | X509Error::NomError(_) => "invalid certificate".into(),
            other => other.to_string(),
        },
    }
}

/// Bit length of a big-endian unsigned integer (leading zero bytes ignored).
fn modulus_bits(be: &[u8]) -> usize {
    match be.iter().position(|b| *b != 0) {
        Some(i) => (be.len() - i) * 8 - be[i].leading_zeros() as usize,
        None => 0,
    }
}

/// One encrypted notification item, Graph's `encryptedContent` object. All
/// binary fields are standard base64 with padding.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EncryptedContent {
    /// The content, AES-256-CBC (PKCS#7) under K with IV = K[0..16].
    pub data: String,
    /// HMAC-SHA256 keyed with K over the ciphertext bytes of `data`.
    pub data_signature: String,
    /// K (32 bytes), RSA-OAEP (SHA-1, MGF1-SHA-1) under the certificate's key.
    pub data_key: String,
    /// The subscription's `encryptionCertificateId`, echoed.
    pub encryption_certificate_id: String,
    /// Uppercase hex SHA-1 of the certificate's DER.
    pub encryption_certificate_thumbprint: String,
}

/// Encrypts one notification item's content for `cert`, Graph's recipe: a
/// fresh random 32-byte key per call, so equal plaintexts give different
/// results. `certificate_id` is the subscription's `encryptionCertificateId`.
pub fn encrypt(
    cert: &EncryptionCertificate,
    certificate_id: &str,
    plaintext: &[u8],
) -> Result<EncryptedContent, CryptoError> {
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut key);

    let ciphertext = cbc::Encryptor::<Aes256>::new_from_slices(&key, &key[..16])
        .expect("a 32-byte key and a 16-byte IV fit AES-256-CBC")
        .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("HMAC accepts keys of any length");
    mac.update(&ciphertext);
    let signature = mac.finalize().into_bytes();
    let wrapped = cert
        .key
        .encrypt(&mut OsRng, Oaep::new::<Sha1>(), &key)
        .map_err(|e| CryptoError::KeyWrap(e.to_string()))?;

    Ok(EncryptedContent {
        data: STANDARD.encode(&ciphertext),
        data_signature: STANDARD.encode(signature),
        data_key: STANDARD.encode(wrapped),
        encryption_certificate_id: certificate_id.to_owned(),
        encryption_certificate_thumbprint: cert.thumbprint.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbc::cipher::BlockDecryptMut;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::RsaPrivateKey;

    const CERT_PEM: &str = include_str!("../../tests/fixtures/notify-rsa2048.cert.pem");
    const KEY_PEM: &str = include_str!("../../tests/fixtures/notify-rsa2048.key.pem");
    const CERT_1024_PEM: &str = include_str!("../../tests/fixtures/notify-rsa1024.cert.pem");
    const CERT_EC_PEM: &str = include_str!("../../tests/fixtures/notify-ec.cert.pem");
    /// `openssl x509 -in notify-rsa2048.cert.pem -noout -fingerprint -sha1`,
    /// colons removed.
    const OPENSSL_SHA1: &str = "E8B237ADD4314C42E967FF192871DC914CFEE69F";

    /// The base64 body of a PEM block, on one line.
    fn one_line_base64(pem: &str) -> String {
        pem.lines().filter(|l| !l.starts_with("-----")).collect()
    }

    fn fixture() -> EncryptionCertificate {
        EncryptionCertificate::parse(&one_line_base64(CERT_PEM)).unwrap()
    }

    /// The client's side of Graph's recipe: unwrap K, check the HMAC, decrypt.
    fn decrypt(content: &EncryptedContent) -> Vec<u8> {
        let private = RsaPrivateKey::from_pkcs8_pem(KEY_PEM).unwrap();
        let key = private
            .decrypt(
                Oaep::new::<Sha1>(),
                &STANDARD.decode(&content.data_key).unwrap(),
            )
            .unwrap();
        assert_eq!(key.len(), 32);
        let ciphertext = STANDARD.decode(&content.data).unwrap();
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
        mac.update(&ciphertext);
        mac.verify_slice(&STANDARD.decode(&content.data_signature).unwrap())
            .expect("dataSignature is HMAC-SHA256 of the ciphertext under K");
        cbc::Decryptor::<Aes256>::new(key[..].into(), key[..16].into())
            .decrypt_padded_vec_mut::<Pkcs7>(&ciphertext)
            .unwrap()
    }

    #[test]
    fn the_thumbprint_is_the_openssl_sha1_fingerprint() {
        let cert = fixture();

        let thumbprint = cert.thumbprint();

        assert_eq!(thumbprint, OPENSSL_SHA1);
    }

    #[test]
    fn a_pem_certificate_is_accepted_and_equals_its_base64_form() {
        let from_base64 = fixture();

        let from_pem = EncryptionCertificate::parse(CERT_PEM).unwrap();

        assert_eq!(from_pem, from_base64);
        assert_eq!(
            from_pem.der(),
            STANDARD.decode(one_line_base64(CERT_PEM)).unwrap()
        );
    }

    #[test]
    fn whitespace_and_line_breaks_in_base64_are_accepted() {
        let body = one_line_base64(CERT_PEM);
        let (a, b) = body.split_at(100);
        let spaced = format!("\r\n  {a}\r\n\t{b} \n");

        let cert = EncryptionCertificate::parse(&spaced).unwrap();

        assert_eq!(cert.thumbprint(), OPENSSL_SHA1);
    }

    #[test]
    fn garbage_is_refused_as_not_base64() {
        let err = EncryptionCertificate::parse("%% certainly not a certificate %%").unwrap_err();

        assert_eq!(err, CertificateError::NotBase64);
    }

    #[test]
    fn url_safe_base64_is_refused_as_not_base64() {
        let err = EncryptionCertificate::parse("-_-_").unwrap_err();

        assert_eq!(err, CertificateError::NotBase64);
    }

    #[test]
    fn a_pem_block_without_its_end_line_is_refused_as_not_base64() {
        let truncated = CERT_PEM.replace(PEM_END, "");

        let err = EncryptionCertificate::parse(&truncated).unwrap_err();

        assert_eq!(err, CertificateError::NotBase64);
    }

    #[test]
    fn base64_of_bytes_that_are_not_a_certificate_is_refused() {
        let not_a_cert = STANDARD.encode(b"hello, this is not DER");

        let err = EncryptionCertificate::parse(&not_a_cert).unwrap_err();

        assert_eq!(
            err.to_string(),
            "encryptionCertificate is not a DER-encoded X.509 certificate: invalid certificate"
        );
    }

    #[test]
    fn a_truncated_certificate_is_refused() {
        let der = STANDARD.decode(one_line_base64(CERT_PEM)).unwrap();

        let err = EncryptionCertificate::parse(&STANDARD.encode(&der[..200])).unwrap_err();

        assert!(matches!(err, CertificateError::NotX509(_)), "{err:?}");
    }

    #[test]
    fn a_certificate_header_without_a_body_is_refused_as_ending_early() {
        let empty_sequence = STANDARD.encode([0x30, 0x00]);

        let err = EncryptionCertificate::parse(&empty_sequence).unwrap_err();

        assert_eq!(
            err,
            CertificateError::NotX509("the data ends before the certificate does".into())
        );
    }

    #[test]
    fn an_empty_value_is_refused() {
        let err = EncryptionCertificate::parse(" \n").unwrap_err();

        assert_eq!(err, CertificateError::NotX509("the value is empty".into()));
    }

    #[test]
    fn bytes_after_the_certificate_are_refused() {
        let mut der = STANDARD.decode(one_line_base64(CERT_PEM)).unwrap();
        der.extend_from_slice(b"extra");

        let err = EncryptionCertificate::parse(&STANDARD.encode(der)).unwrap_err();

        assert_eq!(
            err,
            CertificateError::NotX509("5 unexpected bytes follow the certificate".into())
        );
    }

    #[test]
    fn a_certificate_with_an_ec_key_is_refused() {
        let err = EncryptionCertificate::parse(CERT_EC_PEM).unwrap_err();

        assert_eq!(err, CertificateError::NotRsa);
        assert_eq!(
            err.to_string(),
            "encryptionCertificate must hold an RSA public key"
        );
    }

    #[test]
    fn a_1024_bit_certificate_is_refused() {
        let err = EncryptionCertificate::parse(CERT_1024_PEM).unwrap_err();

        assert_eq!(err, CertificateError::KeySize { bits: 1024 });
        assert_eq!(
            err.to_string(),
            "encryptionCertificate has a 1024-bit RSA key; 2048 to 4096 bits are required"
        );
    }

    #[test]
    fn modulus_bits_ignores_leading_zeros() {
        assert_eq!(modulus_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(modulus_bits(&[0x01, 0xff]), 9);
        assert_eq!(modulus_bits(&[0x00]), 0);
        assert_eq!(modulus_bits(&[]), 0);
    }

    #[test]
    fn encrypted_content_decrypts_with_the_private_key() {
        let cert = fixture();
        let plaintext = br#"{"availability":"Busy","activity":"InACall"}"#;

        let content = encrypt(&cert, "cert-1", plaintext).unwrap();

        assert_eq!(decrypt(&content), plaintext);
        assert_eq!(content.encryption_certificate_id, "cert-1");
        assert_eq!(content.encryption_certificate_thumbprint, OPENSSL_SHA1);
    }

    #[test]
    fn an_empty_plaintext_round_trips_as_one_padding_block() {
        let cert = fixture();

        let content = encrypt(&cert, "cert-1", b"").unwrap();

        assert_eq!(STANDARD.decode(&content.data).unwrap().len(), 16);
        assert_eq!(decrypt(&content), b"");
    }

    #[test]
    fn two_encryptions_of_the_same_plaintext_differ() {
        let cert = fixture();

        let first = encrypt(&cert, "cert-1", b"same").unwrap();
        let second = encrypt(&cert, "cert-1", b"same").unwrap();

        assert_ne!(first.data, second.data);
        assert_ne!(first.data_key, second.data_key);
        assert_ne!(first.data_signature, second.data_signature);
    }

    #[test]
    fn encrypted_content_serializes_with_graph_field_names() {
        let content = encrypt(&fixture(), "cert-1", b"x").unwrap();

        let json = serde_json::to_value(&content).unwrap();

        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "data",
                "dataKey",
                "dataSignature",
                "encryptionCertificateId",
                "encryptionCertificateThumbprint"
            ]
        );
    }
}
