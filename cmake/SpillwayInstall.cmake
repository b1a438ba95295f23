# Install rules: the library, its public headers, the CLI, and a CMake
# package so that an outside project can do
#   find_package(spillway CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE spillway::spillway)
include(CMakePackageConfigHelpers)

set(SPILLWAY_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/spillway)

# Installed binaries find libspillway next to them.
set_target_properties(spillway PROPERTIES INSTALL_RPATH "$ORIGIN")

install(TARGETS spillway EXPORT spillwayTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# (the include directory is exported through the target's INSTALL_INTERFACE)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/spillway DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT spillwayTargets NAMESPACE spillway:: DESTINATION ${SPILLWAY_CMAKE_DIR})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/spillwayConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/spillwayConfig.cmake
                              INSTALL_DESTINATION ${SPILLWAY_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/spillwayConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/spillwayConfig.cmake
              ${PROJECT_BINARY_DIR}/spillwayConfigVersion.cmake
        DESTINATION ${SPILLWAY_CMAKE_DIR})
