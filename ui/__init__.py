"""The app's shared Streamlit pieces (sidebar, generator access, jobs, errors) and the Generator
page's learned-model parts: used by app.py and pages/, which hold only the pages app.py lists."""
