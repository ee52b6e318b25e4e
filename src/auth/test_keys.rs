//! Key fixtures for the auth tests: private keys generated once with
//! `openssl genrsa 2048` / `openssl genpkey -algorithm EC -pkeyopt
//! ec_paramgen_curve:P-256`, and their public halves as JWKs. Test-only; these
//! keys protect nothing.

use serde_json::{json, Value};

/// RSA private key (PKCS#8) whose public half is [`rsa_jwk`].
pub(crate) const RSA_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQD3B5UXI/cDmiuZ\n\
EVPzGmUub8OUQlKsR3/0YVqP88jkYrCAHkoh7lYflUeSW4Z7N/0M3zznjuJcCKkB\n\
DN5Zbv4+HPHgN1NnFQRTjGfl1rQiQ4N6rI94aA6ib7Ks5c/tw+/j3HwBPO5PkC4v\n\
dZgjy60IucvncCcR/Mum+MbRj2IsJye66lfwi7QbVwFv5Epf4mO6cIZ2CkC74PfQ\n\
hrQeSCOOEhNSDjTtWrQlQUpU8EyaPkflDv2ZSmSaQs0EZvJP90wfMcohUoXBqYEz\n\
AT2xsHcqt0Ha7a3hiED0y4pn8J5K7NoKTfLG4vUJbasdmuC3kTDncmrFfUH2qL/2\n\
BOc4uGulAgMBAAECggEAFlfzeocYf9UpRdxNH1M/HSLjSgzwrN//uRM4LYaToGKz\n\
y7bRpj2IQS2PrnOEV69R/mDPwbMJEuF+pddr4iN5sBUOpKTkcJG0VTlBKYcQvnuk\n\
UAt9I5sn3bXkL6LOupcLIu1Nsw/3jy8/mi/U/cHdqgkiIhIhGo2mvvjIBOrm6o7H\n\
mWg8yfCspnZvhbz7a5MrYmzAk6YikdcPf893svSCgZWw8zN6E2k6lDHj6zNvpUp9\n\
YVVAfFq0kUN9DxnATsNw34cpjEvpS+XI3zCMpVQ2TpQyb3SQ8qs3M+5tWYzW8EUr\n\
P+jHfCfWOVtBdcnKwoIoBvDkERW2wqLV33zCaE6QCQKBgQD8dfZmlAYyzGNpsHol\n\
G8EWNr1Kyxq3dNnJZyd57uhBl/5BPdU+C06zqJf/zLRJ2rhNdyky6OZOMrD1m1hh\n\
vjmL/NDeWzCCh8z8L7dz0gesmobDVJmD66eZzQ7VnbpNqr1uqYnQ4VdVl81R1Uwd\n\
BG6PrstLX/zHb9rzPzZd8DT5iQKBgQD6fiDb/LPctQfIf3zAkCVHGN81Ny+ot+xb\n\
xiY1qiJwwQZbDN+GB7mUnB/HnldrWOqr5CBW00cPApuIokxbqjpnLot/8wb2gUcl\n\
j39N0zpKzey2SzTCs6IEJAG02EhpISLXKGf/hdnydkJOjHTJzDVyZFQ0Ll9qQzDk\n\
I8WcqRHGPQKBgQDQKxiElrPRuTST1l+xL4R0I6jL/lNGSIS4DGXBphw+0exlsW2e\n\
3kYD4BWNaCaU61OjFImVH/OfMS83JeOnnOnoows6/egvCXkdzN6xEtMfIL/UWnLH\n\
E048hJghzg/rsMjIceVgph6URjqXqpA7MQdVVKTuvvQ5IuNgRZQ3uzSDOQKBgQCy\n\
kELgTw3wYWRA+xB1PMw2GHbVOpfQz/u/mEsYqkWO1yqusUiOBOe4FmtZI3jx3xq6\n\
mg6rlkTrYFJ7XibMmVa0wytSdG4cPx/2mIqJce/170G02Xus59yw0vIcdql3t9Vc\n\
R0OLlWE+RCsUT2/Zgqb++qJD6GLAH1G08AMooCU5iQKBgQC4Nci+rMmBKSPJpp5s\n\
HIq8wcM0934UWcMmB2EasILb4znbNG1e7Mcxma/9wAG4fQisdeNJDG0Go7FiXgH2\n\
8fhUZkF5nch9c3YZ0BbJbIMb3IX/dbz0DldGLdZfDyWziBz0MizyfRGC60dKAu3S\n\
PkbkHaW4rdnmDCSLzi9ZVQMCfA==\n\
-----END PRIVATE KEY-----\n\
";

/// A second RSA private key, public half [`rsa2_jwk`].
pub(crate) const RSA2_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCylJyztvIE9cqz\n\
8bWFehenTU+xARdSRKRmH+q+jX3fQLhACBAy1WAtNqO530FfZJgGTA7OUiDEb5wm\n\
/F3dzMI9WlvybV76GPkoV4TjXyq+cZt0c7U5djPScTKtvf0XyFNdHVxkh2FqbIDA\n\
BWX7j89zNkgKIvwc8hUUoBk9Bn7zbHIz4haU3NfQGumUzjoo47Qmnh4QElgxzEh0\n\
qh4qwzJjpf0JS2zG0rLlifG5C7NETBGpYAm1KmoCqZJt+U9FX1jp3QfD+UasRHWW\n\
JjCBLrZ8votxDNmECNDSKNiVJNoFgYdEr2L0UDaaJ/GU1oFMVCrFM/FKIiPzWsHJ\n\
Q3G7AGwDAgMBAAECggEAHcE59DkY+DnwAq1/vklf5Dtdz4ihVyQiyaAAdVbj+y0w\n\
cKgnSCEEu7ktQeIbZVvrIgQi5L5ga/qLZ8oy5ar2o6cI8krGQXZPGtQCS1Q8WKuw\n\
kuWt83C+JQ6WusY7g8Ptcp1axfvx/6aBM/1yRvO+RVxtAmtehdV8LQnun/FozlbN\n\
r5cKdVO6b9PJ6K2jmc6W6O0SwBYZdbxFw+3U+wb8PzhNFNaU0pL/YHbPcr21QK1z\n\
zo44PSSMYfvb6ljEr0RtCGC4vqZOG+ZhdzXtXev31SwMKiMl/Bh9xqYLo0oIv1eT\n\
XiYsDx2QB8jSEz1AFtJrc4+KgmpPmSigpye9A7YFkQKBgQDkR3RsfGM/RZ5j+9iJ\n\
FFSAlA39NL1xIarzfDVXgw8iubAGIQsEnaKo4BR7D9zakpkLGnvNpbPm9wfeHMuz\n\
f86YUQ2uYm9dwEOTzyaTlhSCTrkq1SsiGX4LhEH1IZjOHXAp9CBCQI+e+UpcNSW7\n\
XILcY5EOmQKfx+yDgFjo53zPawKBgQDIRCt5JtN8RypvaJkA436cGtHPaqXherpu\n\
uw7gCFUPVrTShNtxGOH403rTkGgqwygF4MvVlBUdC0Q6WV4U/eAMX1DHvxIv88R9\n\
VmNWdw4IzCE2i9C1fPE1Ru94VgHv+ditEdF6HlBa3IKr0ujr6g3Y/4AH0f7ny54m\n\
yJEphh3zyQKBgA3d3U+durWkN/vg14V0K7HnzHW+F2fg4K6Ls/3N40R7vRqSNUYh\n\
gTj666OSEhtg3lUTVcPnNedoyByQ6TrNH7KW8drO9e7e9/vpkHFUo4hK2eqlKkqW\n\
+9YdQZhvYwXaOe8Celcr7s18XSz+uX0JIJXconodh1BHZ7GRQVVcgnNjAoGAEmuS\n\
xBX6Jdg14wFv8VD7eEhPPBDHKTIsq7qw55JcoIiNIT/vHzv2rPhmt8b0jdpdeAzx\n\
MrfoKT+8CtHlgXDIhtrNh1HfzmFRlWW4xV81/0EnXOkHTWoslYXsyNjAXN5SO7kD\n\
14OqSHE3464Glox0sZzuncmG9LMZ3N9d2r/nSWECgYEAxkHZyGK6mvL92SiNBfcF\n\
SwUBc7SBa9QkRqWAeUAiPCUEBwek97C8Wx9Z4caSgOgg5HGr/SRSNhF9xk/tXOT3\n\
v9eX23gyYjD83+4KtU9w86734u3Djg84rF4puTrDr+T9qhyELRl44FkKigqdXLQu\n\
hAZ4CSeyS5DhP5WWoqcLdsc=\n\
-----END PRIVATE KEY-----\n\
";

/// P-256 private key (PKCS#8) whose public half is [`ec_jwk`].
pub(crate) const EC_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgyVkJ4WpYD/5Yj72f\n\
JddpQOSBq8dGX7IvcydEOgbOV/mhRANCAASA+J3Y2W9vddSUgYIAZoMoQRlmaRcC\n\
CN10ClVLwRtPbKOxZyMVNO0ukvBEDYCggmx8tzsfG97MFwdDikAz0EEE\n\
-----END PRIVATE KEY-----\n\
";

/// Public JWK of [`RSA_PEM`], kid `rsa-1`.
pub(crate) fn rsa_jwk() -> Value {
    json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "rsa-1",
        "n": "9weVFyP3A5ormRFT8xplLm_DlEJSrEd_9GFaj_PI5GKwgB5KIe5WH5VHkluGezf9DN88547iXAipAQzeWW7-Phzx4DdTZxUEU4xn5da0IkODeqyPeGgOom-yrOXP7cPv49x8ATzuT5AuL3WYI8utCLnL53AnEfzLpvjG0Y9iLCcnuupX8Iu0G1cBb-RKX-JjunCGdgpAu-D30Ia0HkgjjhITUg407Vq0JUFKVPBMmj5H5Q79mUpkmkLNBGbyT_dMHzHKIVKFwamBMwE9sbB3KrdB2u2t4YhA9MuKZ_CeSuzaCk3yxuL1CW2rHZrgt5Ew53JqxX1B9qi_9gTnOLhrpQ",
        "e": "AQAB"})
}

/// Public JWK of [`RSA2_PEM`], kid `rsa-2`.
pub(crate) fn rsa2_jwk() -> Value {
    json!({"kty": "RSA", "use": "sig", "kid": "rsa-2",
        "n": "spScs7byBPXKs_G1hXoXp01PsQEXUkSkZh_qvo1930C4QAgQMtVgLTajud9BX2SYBkwOzlIgxG-cJvxd3czCPVpb8m1e-hj5KFeE418qvnGbdHO1OXYz0nEyrb39F8hTXR1cZIdhamyAwAVl-4_PczZICiL8HPIVFKAZPQZ-82xyM-IWlNzX0BrplM46KOO0Jp4eEBJYMcxIdKoeKsMyY6X9CUtsxtKy5YnxuQuzREwRqWAJtSpqAqmSbflPRV9Y6d0Hw_lGrER1liYwgS62fL6LcQzZhAjQ0ijYlSTaBYGHRK9i9FA2mifxlNaBTFQqxTPxSiIj81rByUNxuwBsAw",
        "e": "AQAB"})
}

/// Public JWK of [`EC_PEM`], kid `ec-1`.
pub(crate) fn ec_jwk() -> Value {
    json!({"kty": "EC", "crv": "P-256", "kid": "ec-1",
        "x": "gPid2Nlvb3XUlIGCAGaDKEEZZmkXAgjddApVS8EbT2w",
        "y": "o7FnIxU07S6S8EQNgKCCbHy3Ox8b3swXB0OKQDPQQQQ"})
}

/// A JWK set document holding `keys`.
pub(crate) fn jwks_json(keys: &[Value]) -> String {
    json!({"keys": keys}).to_string()
}
