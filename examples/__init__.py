"""Runnable SPANE examples: workflow definitions (YAML) and the Python tasks they call.

Run one from the repository root, e.g.::

    spane run examples/order_fulfilment.yaml --import examples.shop \
        --input @examples/inputs/order_small.json
"""
