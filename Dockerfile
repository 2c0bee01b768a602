# syntax=docker/dockerfile:1
# ModelGateway's container image (docs/deployment.md): restored and published in the .NET SDK image,
# run on the chiseled ASP.NET Core runtime image (Ubuntu without a shell or package manager), as the
# image's non-root user, from a read-only root file system (give it a writable /tmp).
#
#   docker build -t modelgateway .
#   docker run --rm -p 8080:8080 --read-only --tmpfs /tmp \
#     -v "$PWD/deploy/examples/openai-azure-vllm.yaml:/etc/modelgateway/routing.yaml:ro" \
#     -e OPENAI_API_KEY -e AZURE_OPENAI_API_KEY modelgateway
#
# The routing file is read from /etc/modelgateway/routing.yaml (MODELGATEWAY_CONFIG): mount it there.
# Without it the gateway stops with exit code 1, rather than serving the simulated demo by accident;
# -e MODELGATEWAY_CONFIG= serves the demo.

ARG DOTNET_VERSION=10.0

FROM mcr.microsoft.com/dotnet/sdk:${DOTNET_VERSION} AS build
WORKDIR /src
# The project files alone first: the restore layer stays cached until a package changes.
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
COPY src/ModelGateway/ModelGateway.csproj src/ModelGateway/
RUN dotnet restore src/ModelGateway/ModelGateway.csproj
COPY src/ModelGateway/ src/ModelGateway/
RUN dotnet publish src/ModelGateway/ModelGateway.csproj -c Release --no-restore -o /app -p:UseAppHost=false

FROM mcr.microsoft.com/dotnet/aspnet:${DOTNET_VERSION}-noble-chiseled AS runtime
WORKDIR /app
COPY --from=build /app ./
# 0.0.0.0, not the gateway's own default of localhost: a container is reached from outside itself.
# ASPNETCORE_HTTP_PORTS (set by the base image) is cleared so only ASPNETCORE_URLS decides.
ENV ASPNETCORE_URLS=http://0.0.0.0:8080 \
    ASPNETCORE_HTTP_PORTS= \
    MODELGATEWAY_CONFIG=/etc/modelgateway/routing.yaml
EXPOSE 8080
# The chiseled images define this non-root user (uid 1654); nothing in /app is writable by it.
USER $APP_UID
ENTRYPOINT ["dotnet", "ModelGateway.dll"]
