"""Schemathesis hooks for fieldsync: tus bodies (application/offset+octet-stream) are raw bytes."""

import schemathesis
from hypothesis import strategies as st

schemathesis.openapi.media_type("application/offset+octet-stream", st.binary(max_size=4096))
