"""Test harness of the control-plane tests: a kubelet stand-in, the operator
installed from the chart, and the testbed control plane (TEST CODE only)."""
