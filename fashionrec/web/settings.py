"""What a running web server is allowed to do: upload caps, URL policy, CORS, paging limits."""

from __future__ import annotations

from dataclasses import dataclass

from ..images import DEFAULT_MAX_PIXELS
from ..recommend import MAX_PER_PAGE

MIB = 1024 * 1024


@dataclass(frozen=True)
class WebSettings:
    """Limits and switches of one web app (immutable; one per :func:`~fashionrec.web.create_app`).

    Attributes
    ----------
    max_upload_bytes:
        Largest uploaded picture, in bytes (default 10 MiB). Requests are refused
        with 413 as soon as more than this has arrived, never read whole first.
    max_pixels:
        Largest picture, in pixels (width x height), checked from the image
        header before decoding; larger ones are refused with 413.
    allow_private_urls:
        Whether ``?url=`` may name a private, loopback, link-local or reserved
        address (an intranet catalog); off by default.
    cors_origins:
        Origins allowed to call the API from a browser (``https://shop.example``);
        empty means no CORS headers at all.
    per_page:
        Products per page of ``/api/products`` when the request does not say (1 to
        :data:`~fashionrec.recommend.MAX_PER_PAGE`).
    max_k:
        Most recommendations one request may ask for.
    """

    max_upload_bytes: int = 10 * MIB
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    allow_private_urls: bool = False
    cors_origins: tuple[str, ...] = ()
    per_page: int = 48
    max_k: int = 100

    def __post_init__(self) -> None:
        if not isinstance(self.max_upload_bytes, int) or self.max_upload_bytes < 1:
            raise ValueError(f"max_upload_bytes must be a whole number of bytes >= 1, got {self.max_upload_bytes!r}")
        if self.max_pixels is not None and (not isinstance(self.max_pixels, int) or self.max_pixels < 1):
            raise ValueError(f"max_pixels must be a whole number >= 1 or None, got {self.max_pixels!r}")
        if not 1 <= self.per_page <= MAX_PER_PAGE:
            raise ValueError(f"per_page must be between 1 and {MAX_PER_PAGE}, got {self.per_page!r}")
        if self.max_k < 1:
            raise ValueError(f"max_k must be at least 1, got {self.max_k!r}")
        # A list or a single string given by mistake becomes the tuple it means.
        origins = (self.cors_origins,) if isinstance(self.cors_origins, str) else tuple(self.cors_origins)
        object.__setattr__(self, "cors_origins", origins)
