from setuptools import setup

setup(name="pkg", packages=["pkg"], package_dir={"": "src"})
