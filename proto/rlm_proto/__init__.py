# Generated from proto/ by `python proto/generate.py`. DO NOT EDIT.
