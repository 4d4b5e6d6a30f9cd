"""Archive roots: a local directory or an object-store URI, and keeping secrets out of text.

A root is either a path (``./archive``, ``/data/ticks``) or a URI. ``s3://bucket/prefix`` is
handled here so endpoint, region and credentials are found the standard way, in this order:

* options passed by the caller (``storage_options``), then the URI's query string
  (``?region=eu-west-1&endpoint_override=http://127.0.0.1:9000``), then user info in the URI
  (``s3://KEY:SECRET@bucket/prefix``: accepted, but redacted everywhere);
* the environment: ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (``http://host:port``),
  ``AWS_REGION`` / ``AWS_DEFAULT_REGION``; credentials are left to the AWS SDK's default chain
  (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``
  and ``~/.aws``, web identity, instance metadata) unless a ``profile`` option names a
  section of the shared credentials file.

Any other URI (``gs://``, ``abfs://``, ``hdfs://``, ``file://``) goes to
:meth:`pyarrow.fs.FileSystem.from_uri`.

Object stores cannot rename atomically, so :attr:`ArchiveRoot.object_store` tells the writer
to upload each finished file straight to its final key (a PUT, or a multipart upload that
is only completed once every part is in: the object appears whole or not at all).

Every message built here goes through :func:`redact`: user info and secret query values of
URIs are masked, and so is every secret value this module has seen.
"""

from __future__ import annotations

import configparser
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import pyarrow.fs as pafs

from recorder.core._errors import ArchiveError
from recorder.core._secrets import MASK, redact_secrets, remember_secret

#: Options accepted in ``storage_options`` and in the query string of an ``s3://`` URI.
S3_OPTIONS: Final = frozenset(
    {
        "access_key",
        "secret_key",
        "session_token",
        "anonymous",
        "role_arn",
        "session_name",
        "external_id",
        "region",
        "endpoint_override",
        "scheme",
        "connect_timeout",
        "request_timeout",
        "force_virtual_addressing",
        "tls_ca_file_path",
        "profile",
    }
)
_SECRET_OPTIONS: Final = frozenset({"access_key", "secret_key", "session_token", "external_id"})
_SECRET_ENV: Final = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_BOOL_OPTIONS: Final = frozenset({"anonymous", "force_virtual_addressing"})
_FLOAT_OPTIONS: Final = frozenset({"connect_timeout", "request_timeout"})

# scheme://user[:password]@host  ->  scheme://***@host
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]*)@")
_SECRET_QUERY = re.compile(
    r"(?P<key>\b(?:access_key|secret_key|session_token|external_id|password|token|"
    r"aws_secret_access_key|aws_session_token|X-Amz-Signature|X-Amz-Credential|"
    r"X-Amz-Security-Token)=)(?P<value>[^&\s'\"]*)",
    re.IGNORECASE,
)


def _remember(*secrets: str | None) -> None:
    remember_secret(*secrets)


def redact(text: str) -> str:
    """``text`` with URI credentials, secret query values, credential fields and every known
    secret (:mod:`recorder.core._secrets`, plus the AWS secrets in the environment) masked."""
    text = _USERINFO.sub(lambda m: m["scheme"] + MASK + "@", text)
    text = _SECRET_QUERY.sub(lambda m: m["key"] + MASK, text)
    return redact_secrets(text, (v for k in _SECRET_ENV if (v := os.environ.get(k))))


@dataclass(frozen=True, slots=True)
class ArchiveRoot:
    """Where an archive lives: a filesystem and a base path inside it.

    ``display`` is the root as given, with credentials masked: the only form to show.
    ``object_store`` is true when renames are not atomic (write finished objects in place).
    """

    fs: pafs.FileSystem = field(repr=False, compare=False)
    base: str
    display: str
    object_store: bool

    @property
    def local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)


def open_archive_root(
    root: str, storage_options: Mapping[str, object] | None = None
) -> ArchiveRoot:
    """Resolve ``root`` (a path or a URI) into an :class:`ArchiveRoot`.

    Raises :class:`~recorder.core._errors.ArchiveError` (message redacted, no chained cause that
    could carry a secret) when the URI or an option is invalid.
    """
    if "://" not in root:
        if storage_options:
            raise ArchiveError("storage options are only accepted with an object-store URI")
        return ArchiveRoot(pafs.LocalFileSystem(), os.path.abspath(root), root, object_store=False)
    scheme = root.partition("://")[0].lower()
    if scheme in ("s3", "s3a"):
        return _open_s3(root, storage_options or {})
    if storage_options:
        raise ArchiveError(f"storage options are not supported for {scheme}:// roots")
    try:
        fs, path = pafs.FileSystem.from_uri(root)
    except (OSError, ValueError, TypeError) as exc:  # pyarrow's errors may quote the URI
        raise ArchiveError(f"cannot open archive root {redact(root)}: {redact(str(exc))}") from None
    local = isinstance(fs, pafs.LocalFileSystem)
    return ArchiveRoot(fs, path.rstrip("/") or "/", redact(root), object_store=not local)


def _open_s3(root: str, storage_options: Mapping[str, object]) -> ArchiveRoot:
    shown = redact(root)
    parts = urllib.parse.urlsplit(root)
    userinfo, _, bucket = parts.netloc.rpartition("@")
    if not bucket:
        raise ArchiveError(f"no bucket in archive root {shown}")
    opts: dict[str, object] = {}
    if userinfo:
        user, _, password = userinfo.partition(":")
        opts["access_key"] = urllib.parse.unquote(user)
        opts["secret_key"] = urllib.parse.unquote(password)
    for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        opts[k] = v
    opts.update(storage_options)
    _remember(*(str(opts[k]) for k in _SECRET_OPTIONS if opts.get(k)))
    unknown = sorted(set(opts) - S3_OPTIONS)
    if unknown:
        raise ArchiveError(f"unknown S3 option(s) {unknown} for archive root {shown}")
    try:
        fs = s3_filesystem(opts)
    except (OSError, ValueError, TypeError) as exc:
        raise ArchiveError(f"cannot open archive root {shown}: {redact(str(exc))}") from None
    base = posixpath_join(bucket, parts.path)
    return ArchiveRoot(fs, base, shown, object_store=True)


def posixpath_join(bucket: str, path: str) -> str:
    """``bucket/prefix`` without leading, trailing or doubled separators."""
    segments = [s for s in path.split("/") if s]
    return "/".join([bucket, *segments])


def s3_filesystem(options: Mapping[str, object]) -> pafs.S3FileSystem:
    """A :class:`pyarrow.fs.S3FileSystem` from ``options`` plus the standard environment."""
    kw: dict[str, object] = {}
    for k, v in options.items():
        if k in _BOOL_OPTIONS:
            kw[k] = v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes")
        elif k in _FLOAT_OPTIONS:
            kw[k] = float(str(v))
        elif k != "profile":
            kw[k] = str(v)
    profile = options.get("profile")
    if profile and "access_key" not in kw and not kw.get("anonymous"):
        kw.update(_profile_credentials(str(profile)))
    if "endpoint_override" not in kw:
        env = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if env:
            kw["endpoint_override"] = env
    endpoint = kw.get("endpoint_override")
    if isinstance(endpoint, str) and "://" in endpoint:
        url = urllib.parse.urlsplit(endpoint)
        kw["endpoint_override"] = url.netloc
        kw.setdefault("scheme", url.scheme)
    if "region" not in kw:
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            kw["region"] = region
    if bool(kw.get("access_key")) != bool(kw.get("secret_key")):
        raise ValueError("access_key and secret_key must be given together")
    # Small files go up in one PUT; larger ones in a multipart upload completed on close.
    kw["allow_delayed_open"] = True
    # Part failures are recorded by the background uploader, so close() never completes an
    # upload that lost a part (a partial object must never become visible).
    kw["background_writes"] = True
    return pafs.S3FileSystem(**kw)


def _profile_credentials(profile: str) -> dict[str, str]:
    path = os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.expanduser("~/.aws/credentials")
    cp = configparser.RawConfigParser()
    cp.read(path)
    if not cp.has_section(profile):
        raise ValueError(f"profile {profile!r} not found in the shared credentials file")
    sec = cp[profile]
    out = {
        "access_key": sec.get("aws_access_key_id", ""),
        "secret_key": sec.get("aws_secret_access_key", ""),
    }
    if sec.get("aws_session_token"):
        out["session_token"] = sec["aws_session_token"]
    _remember(*out.values())
    return {k: v for k, v in out.items() if v}


__all__ = ["S3_OPTIONS", "ArchiveRoot", "open_archive_root", "redact", "s3_filesystem"]
