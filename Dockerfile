# Multi-stage build: a static tlsrpt binary in a small, non-root image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/tlsrpt ./cmd/tlsrpt

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tlsrpt /usr/local/bin/tlsrpt
USER nonroot:nonroot
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD ["/usr/local/bin/tlsrpt", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/tlsrpt"]
CMD ["serve"]
