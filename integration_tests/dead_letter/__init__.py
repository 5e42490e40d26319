"""The rejected-records file and the S3 store against moto's server."""
