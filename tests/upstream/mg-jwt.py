#!/usr/bin/env python3
"""Keys and JSON Web Tokens for the end-to-end tests, made with python3-cryptography (an
implementation independent of meshgate's OpenSSL code).

  mg-jwt.py keys DIR
      make DIR/rsa.pem (RSA 2048, kid "rsa"), DIR/ec.pem (P-256, kid "ec") and
      DIR/other.pem (an RSA key no key set holds); write the public halves as
      DIR/jwks-rsa.json and DIR/jwks-ec.json
  mg-jwt.py token DIR KEY ALG CLAIMS-JSON [EXP-IN-SECONDS] [KID]
      print a token signed with DIR/KEY.pem under ALG (RS256, PS256, ES256); exp is now +
      EXP-IN-SECONDS (default 3600; negative: expired) unless CLAIMS-JSON has one; the
      header names KID (default: KEY)
"""
import base64
import json
import os
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_b64(n, size=None):
    size = size or (n.bit_length() + 7) // 8
    return b64(n.to_bytes(size, "big"))


def write_key(path, key):
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def keys(d):
    os.makedirs(d, exist_ok=True)
    r = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    e = ec.generate_private_key(ec.SECP256R1())
    write_key(os.path.join(d, "rsa.pem"), r)
    write_key(os.path.join(d, "ec.pem"), e)
    write_key(os.path.join(d, "other.pem"),
              rsa.generate_private_key(public_exponent=65537, key_size=2048))
    rn = r.public_key().public_numbers()
    en = e.public_key().public_numbers()
    with open(os.path.join(d, "jwks-rsa.json"), "w") as f:
        json.dump({"keys": [{"kty": "RSA", "kid": "rsa", "e": int_b64(rn.e),
                             "n": int_b64(rn.n)}]}, f)
    with open(os.path.join(d, "jwks-ec.json"), "w") as f:
        json.dump({"keys": [{"kty": "EC", "kid": "ec", "crv": "P-256", "alg": "ES256",
                             "x": int_b64(en.x, 32), "y": int_b64(en.y, 32)}]}, f)


def token(d, keyname, alg, claims, exp_in=3600, kid=None):
    with open(os.path.join(d, keyname + ".pem"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    claims = json.loads(claims)
    claims.setdefault("exp", int(time.time()) + exp_in)
    header = {"alg": alg, "kid": kid or keyname, "typ": "JWT"}
    signing_input = (b64(json.dumps(header).encode()) + "." +
                     b64(json.dumps(claims).encode())).encode()
    if alg == "RS256":
        sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "PS256":
        sig = key.sign(signing_input,
                       padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                   salt_length=hashes.SHA256.digest_size),
                       hashes.SHA256())
    elif alg == "ES256":
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        sys.exit("unknown alg " + alg)
    return signing_input.decode() + "." + b64(sig)


def main(argv):
    if len(argv) == 3 and argv[1] == "keys":
        keys(argv[2])
    elif len(argv) in (6, 7, 8) and argv[1] == "token":
        exp_in = int(argv[6]) if len(argv) > 6 else 3600
        kid = argv[7] if len(argv) > 7 else None
        print(token(argv[2], argv[3], argv[4], argv[5], exp_in, kid))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
