"""What an operator watches: the server's Prometheus metrics (`metrics`), its gRPC calls counted and logged
(`rpc`), and the histograms they keep (`histogram`)."""
