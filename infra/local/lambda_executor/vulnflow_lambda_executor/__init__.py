"""vulnflow LocalStack Lambda runtime executor plugin."""
