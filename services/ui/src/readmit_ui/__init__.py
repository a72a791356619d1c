"""Streamlit page for clinicians, talking to the readmit api over HTTP."""
