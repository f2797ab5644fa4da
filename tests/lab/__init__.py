"""The lab tier: real Postfix, rbldnsd, dnsmasq and microsocks on loopback.

`python -m tests.lab up|down` (make lab-up / make lab-down) for trying fleet by hand;
tests/test_lab_e2e.py for the end-to-end tests. See services.py for the topology.
"""
