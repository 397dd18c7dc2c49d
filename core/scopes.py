"""What a request carries, read the same way everywhere: a socket scope's query
parameters and headers, and the token of an `Authorization: Bearer` header."""

from urllib.parse import parse_qs


def query_value(scope: dict, name: str, keep_blank: bool = True) -> str | None:
    """The first value of `?name=` in a scope's query string ("" when given empty;
    with `keep_blank` False, empty values are passed over), or None when the query
    does not name it."""
    query = scope.get("query_string", b"").decode("latin-1")
    values = parse_qs(query, keep_blank_values=keep_blank).get(name)
    return values[0] if values else None


def header_value(scope: dict, name: bytes) -> str:
    """The value of a scope's header `name` (lowercase), or "" without one."""
    for header, value in scope.get("headers", ()):
        if header == name:
            return value.decode("latin-1")
    return ""


def bearer_credentials(authorization: str) -> str:
    """The token of an `Authorization: Bearer <token>` value, else ""."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
