# One image for both workloads; the chart picks the entrypoint (gateway or fanout).
# Build: docker build -t ghcr.io/realtime-pipeline/realtime-pipeline:0.1.0 .
# (Not built by the test suite: this machine has no Docker engine.)
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish src/Gateway/Realtime.Gateway.csproj -c Release -o /app/gateway \
 && dotnet publish src/Fanout/Realtime.Fanout.csproj -c Release -o /app/fanout

FROM mcr.microsoft.com/dotnet/aspnet:10.0
# Non-root, matching the chart's securityContext (runAsUser 10001); the root filesystem can be read-only.
RUN groupadd --gid 10001 realtime && useradd --uid 10001 --gid 10001 --no-create-home realtime
COPY --from=build /app /app
USER 10001
ENV DOTNET_gcServer=0 DOTNET_EnableDiagnostics=0
EXPOSE 8080 9080 8090
ENTRYPOINT []
CMD ["dotnet", "/app/gateway/Realtime.Gateway.dll"]
