"""Generated from protos/switch/v1 by protos/generate.py. Do not edit."""
