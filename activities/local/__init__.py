"""The local runtime: real mariadbd, agent and HAProxy processes on 127.0.0.1."""
