#!/usr/bin/env python3
"""Reference token ids of the WikiText-2 test file under SmolLM2's tokenizer, from Hugging Face
`tokenizers` -- the oracle of the BpeTokenizer test (docs/TESTING.md, "Tokenizer").

    python3 scripts/tokenizer_reference.py                      # writes the fixture
    python3 scripts/tokenizer_reference.py --compare build/slidesparse --no-write

The reference shares nothing with our code: the GGUF is read by the `gguf` package (ggml-org), the
tokenizer is built by transformers' own GGUF conversion (vocabulary, merges, control tokens as
added tokens), and ids come from `tokenizers`. One step is ours to state: that conversion has no
entry for the "smollm" pre-tokenizer and would fall back to GPT-2's ByteLevel split, so the script
installs the pre-tokenizer of SmolLM2's own tokenizer.json, Sequence[Digits(individual_digits=true),
ByteLevel(add_prefix_space=false, use_regex=true)] (what llama.cpp's "smollm" type also stands for).
(AutoTokenizer.from_pretrained(..., gguf_file=...) itself needs torch, which is not installed.)

The text is the file's bytes decoded as UTF-8 (strict), tokenized as ONE string, with no BOS
(SmolLM2's GGUF says add_bos_token = false) and add_special_tokens=False.

The fixture holds only a digest of the ids: their count, the SHA-256 of all ids as little-endian
int32, the SHA-256 of every 4096-id chunk (to localize a mismatch), the first and last 32 ids,
and the versions used. It is not a copy of the text, and the text cannot be rebuilt from it.

--compare BINARY runs `BINARY tokenize` (after `BINARY import-gguf` into a temporary directory
unless --model is given) and diffs every id, printing the first mismatch with context. With
--synthetic it also diffs two generated texts: every Unicode scalar value in a few contexts
(letters, digits, spaces and symbols around it: the regex classes of RE2 against Oniguruma's), and
random strings over an alphabet of the tricky characters (whitespace runs, CRLF, NBSP, contractions,
digits, marks, CJK, emoji, special tokens).

The script runs itself inside a virtual environment (.deps/pyref by default), creating it and
installing the pinned packages from PyPI on first use.
"""
import argparse
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PINNED = ["tokenizers==0.23.3", "transformers==5.23.0", "gguf==0.19.0"]
CHUNK = 4096
EDGE = 32
DEFAULT_GGUF = os.path.join(ROOT, ".deps/models/SmolLM2-135M-Instruct.Q4_1.gguf")
DEFAULT_TEXT = os.environ.get("SLIDESPARSE_WIKITEXT", "/work/shared/data/wikitext-2-raw/wiki.test.raw")
DEFAULT_OUT = os.path.join(ROOT, "tests/fixtures/wikitext2_test_smollm2_ids.json")


def ensure_venv(venv):
    """Re-run this script with the venv's interpreter, creating the venv first if needed."""
    py = os.path.join(venv, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):
        return
    if not os.path.exists(py):
        print(f"[tokenizer_reference] creating {venv} and installing {' '.join(PINNED)}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", *PINNED], check=True)
    os.execv(py, [py, os.path.abspath(__file__), *sys.argv[1:]])


def build_reference(gguf_path):
    """(tokenizer, pre type, versions) from the GGUF, as described in the module docstring."""
    import gguf
    import tokenizers
    import transformers
    from tokenizers import pre_tokenizers
    from transformers.integrations.gguf.gguf_tokenizer_mapping import (
        GGUF_TOKENIZER_MAPPING,
        convert_gguf_tokenizer,
    )

    reader = gguf.GGUFReader(gguf_path)
    meta = {k: f.contents() for k, f in reader.fields.items()}
    # The same renaming transformers' get_gguf_tokenizer applies to the file's keys.
    tokenizer_dict = {
        name: meta[f"tokenizer.{key}"]
        for key, name in GGUF_TOKENIZER_MAPPING["tokenizer"].items()
        if f"tokenizer.{key}" in meta
    }
    backend, _ = convert_gguf_tokenizer(meta["general.architecture"], tokenizer_dict)
    pre = tokenizer_dict.get("pre_tokenizer_type", "default")
    converted = json.loads(backend.to_str())["pre_tokenizer"]
    if pre == "smollm":
        if converted != {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}:
            sys.exit(f"transformers' conversion now gives the pre-tokenizer {converted}; revisit this script")
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True),
             pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
        )
    elif pre not in ("gpt2", "default"):
        sys.exit(f"pre-tokenizer type {pre!r}: this script knows smollm, gpt2 and default")
    if meta.get("tokenizer.ggml.add_bos_token", False):
        sys.exit("the GGUF asks for a BOS token; the fixture convention (no BOS) would need revisiting")
    versions = {
        "python": sys.version.split()[0],
        "tokenizers": tokenizers.__version__,
        "transformers": transformers.__version__,
        "gguf": _version("gguf"),
    }
    return backend, pre, versions


def _version(dist):
    from importlib.metadata import version

    return version(dist)


def sha256_ids(ids):
    return hashlib.sha256(struct.pack(f"<{len(ids)}i", *ids)).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def digest(ids):
    return {
        "count": len(ids),
        "ids_sha256": sha256_ids(ids),
        "chunk_ids": CHUNK,
        "chunk_sha256": [sha256_ids(ids[i:i + CHUNK]) for i in range(0, len(ids), CHUNK)],
        "first_ids": ids[:EDGE],
        "last_ids": ids[-EDGE:],
    }


def ours(binary, model_dir, gguf_path, text_path):
    """Our ids: `binary tokenize` into a temporary file (importing the GGUF first if needed)."""
    with tempfile.TemporaryDirectory(prefix="tokref_") as tmp:
        if model_dir is None:
            model_dir = os.path.join(tmp, "model")
            subprocess.run([binary, "import-gguf", gguf_path, model_dir, "-q"], check=True, stdout=subprocess.DEVNULL)
        ids_path = os.path.join(tmp, "ids.bin")
        r = subprocess.run([binary, "tokenize", "--model", model_dir, "--text", text_path, "--ids-out", ids_path,
                            "--json"], check=True, capture_output=True, text=True)
        report = json.loads(r.stdout)
        with open(ids_path, "rb") as f:
            raw = f.read()
    return list(struct.unpack(f"<{len(raw) // 4}i", raw)), report


def synthetic_texts(seed=1234, count=20000):
    """The two --synthetic texts (deterministic)."""
    import random

    every = "".join(
        f"a{c}{c} {c}1{c}  {c}\n"
        for c in map(chr, range(0x110000))
        if not 0xD800 <= ord(c) <= 0xDFFF
    )
    alphabet = [" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2028", "\x0b", "\x85", "a", "Z", "é",
                "e\u0301", "'", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "0", "7", "\u0663", "\u00b2",
                "\u2167", "!", "?", "...", "-", "@", "=", "中", "文", "ß", "\U0001f600", "\u200b", "\ufeff", "<", "|",
                "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_", "\x04", "\u00ff"]
    rng = random.Random(seed)
    pieces = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 24))) for _ in range(count)]
    return [("every code point", every), ("random", "".join(pieces))]


def compare(ref, got, tok):
    """Prints the first mismatch with context; returns True when equal."""
    n = min(len(ref), len(got))
    first = next((i for i in range(n) if ref[i] != got[i]), None)
    if first is None and len(ref) == len(got):
        print(f"[compare] identical: {len(ref)} ids")
        return True
    if first is None:
        first = n
    lo, hi = max(0, first - 8), first + 8
    print(f"[compare] MISMATCH at id {first} (reference {len(ref)} ids, ours {len(got)})")
    for name, ids in (("reference", ref), ("ours", got)):
        window = ids[lo:hi]
        print(f"  {name:>9} [{lo}:{lo + len(window)}]: {window}")
        print(f"  {'':>9} tokens: {[tok.id_to_token(i) for i in window]}")
    print(f"  text around it: {tok.decode(ref[lo:hi])!r}")
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", default=DEFAULT_GGUF, help="SmolLM2 GGUF (scripts/fetch_model.sh)")
    ap.add_argument("--text", default=DEFAULT_TEXT, help="wiki.test.raw ($SLIDESPARSE_WIKITEXT)")
    ap.add_argument("--out", default=DEFAULT_OUT, help="fixture to write")
    ap.add_argument("--no-write", action="store_true", help="do not write the fixture")
    ap.add_argument("--compare", metavar="BINARY", help="also diff every id of `BINARY tokenize` against the reference")
    ap.add_argument("--model", help="with --compare: an imported model directory (default: import the GGUF)")
    ap.add_argument("--synthetic", action="store_true", help="with --compare: also diff the generated texts")
    ap.add_argument("--venv", default=os.path.join(ROOT, ".deps/pyref"), help="virtual environment to use")
    args = ap.parse_args()
    ensure_venv(os.path.abspath(args.venv))

    for path, hint in ((args.gguf, "run scripts/fetch_model.sh"), (args.text, "set SLIDESPARSE_WIKITEXT")):
        if not os.path.exists(path):
            sys.exit(f"{path} not found ({hint})")
    tok, pre, versions = build_reference(args.gguf)
    with open(args.text, "rb") as f:
        raw = f.read()
    text = raw.decode("utf-8")
    ids = tok.encode(text, add_special_tokens=False).ids
    print(f"[tokenizer_reference] {args.text}: {len(raw)} bytes -> {len(ids)} ids (pre {pre}; {versions})")
    if tok.decode(ids, skip_special_tokens=False) != text:
        sys.exit("the reference does not decode its own ids back to the text")

    if not args.no_write:
        fixture = {
            "description": "SHA-256 digests of the token ids of the WikiText-2 raw test file under SmolLM2's "
                           "tokenizer, from Hugging Face tokenizers (see scripts/tokenizer_reference.py)",
            "text": {"file": "wikitext-2-raw/wiki.test.raw", "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()},
            "gguf": {"file": os.path.basename(args.gguf), "sha256": sha256_file(args.gguf), "pre": pre},
            "convention": "file bytes decoded as UTF-8, one string, add_special_tokens=False, no BOS; "
                          "ids hashed as little-endian int32",
            "reference": versions,
            "pre_tokenizer": "Sequence[Digits(individual_digits=true), ByteLevel(add_prefix_space=false, "
                             "use_regex=true)]" if pre == "smollm" else "ByteLevel(add_prefix_space=false)",
            "command": "python3 scripts/tokenizer_reference.py",
            **digest(ids),
        }
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(fixture, f, indent=1)
            f.write("\n")
        os.replace(tmp, args.out)
        print(f"[tokenizer_reference] wrote {args.out}")

    if args.compare:
        got, report = ours(os.path.abspath(args.compare), args.model, args.gguf, args.text)
        print(f"[compare] ours: {report.get('tokens')} ids in {report.get('seconds', 0):.3f} s")
        ok = compare(ids, got, tok)
        if args.synthetic:
            for name, synth in synthetic_texts():
                with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as f:
                    f.write(synth.encode("utf-8"))
                try:
                    ref = tok.encode(synth, add_special_tokens=False).ids
                    got, _ = ours(os.path.abspath(args.compare), args.model, args.gguf, f.name)
                finally:
                    os.unlink(f.name)
                print(f"[compare] synthetic text '{name}': {len(synth)} characters")
                ok = compare(ref, got, tok) and ok
        if not ok:
            sys.exit(1)


if __name__ == "__main__":
    main()
