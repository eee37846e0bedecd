"""OpenTelemetry Protocol: conversion between OTLP messages and stored spans, receiver, export."""
