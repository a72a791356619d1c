"""How the api's clients (the ui and Locust) ride over an api pod that just died."""

# A refused connection sent nothing, so retrying it is safe; a request that was sent is never
# retried. A killed pod stays in the Service until the kubelet sees the death (it relists every
# 1 s), the EndpointSlice marks it not ready and kube-proxy resyncs (at most once a second), and
# each retry may be routed to the dead pod again. Four retries wait 0, 0.5, 1 and 2 s (httpcore's
# fixed schedule, which Locust's urllib3 Retry copies): 3.5 s, past the window test_e2e_node
# measures (its faults file: "dead pod listed ready").
CONNECT_RETRIES = 4
