"""The client's version. Its major number is the API version it speaks (`/api/v1/`):
a new API version gets a new major release; minor releases add to the client."""

__version__ = "1.1.0"
API_VERSION = "1"
